//! The seam every upstream connection goes through: [`DirectDialer`] connects a socket from the
//! host seam; `edgemesh_tunnel::TunnelDialer` wraps it and sends endpoints on other nodes through
//! the tunnel as streams ([`Upstream::Stream`]) and datagram channels.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_host::SocketFactory;
use edgemesh_model::{Backend, Frontend};
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream that is not a plain TCP socket (e.g. a tunnel stream).
pub trait UpstreamIo: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug> UpstreamIo for T {}

/// A connected upstream. A TCP socket can be spliced; anything else is copied.
#[derive(Debug)]
pub enum Upstream {
    Tcp(TcpStream),
    Stream(Box<dyn UpstreamIo>),
}

impl Upstream {
    /// As one byte stream, for callers that do not splice (an HTTP client connection).
    pub fn into_stream(self) -> Box<dyn UpstreamIo> {
        match self {
            Upstream::Tcp(socket) => Box::new(socket),
            Upstream::Stream(stream) => stream,
        }
    }
}

/// A datagram flow to a backend that is not reached with a plain UDP socket (a tunnel flow).
pub trait DatagramChannel: Send + Sync + fmt::Debug {
    /// Queues one datagram without waiting; `false` when it was dropped (full or closed).
    fn send(&self, datagram: &[u8]) -> bool;
    /// The backend's next datagram; `None` once the flow is closed.
    fn recv(&self) -> BoxFuture<'_, Option<Vec<u8>>>;
}

/// Opening a [`DatagramChannel`]; owns what it needs, so the proxy can run it in its own task.
pub type DatagramDial = BoxFuture<'static, io::Result<Box<dyn DatagramChannel>>>;

/// Opens connections to backends.
///
/// `connect_timeout` (the proxy's `ProxyConfig::connect_timeout`) bounds the dial's own work,
/// and the dialer applies it: all of a socket connect, but not a wait for capacity that a
/// dialer queues for first. A tunnel open waits for one of the peer's stream slots
/// (back-pressure, bounded by the tunnel) before it reaches the peer and has the remote agent
/// dial; with the connect timeout over the whole, a burst of new flows to one peer failed only
/// because others were ahead of it in the queue (issue #17). The proxy adds no bound of its own.
pub trait Dialer: Send + Sync + 'static {
    fn dial<'a>(
        &'a self,
        backend: &'a Backend,
        frontend: &'a Frontend,
        connect_timeout: Duration,
    ) -> BoxFuture<'a, io::Result<Upstream>>;

    /// UDP: `None` (the default) sends the flow's datagrams from a plain marked socket straight
    /// to the backend; `Some` opens a datagram channel instead (an endpoint behind the tunnel),
    /// its open bounded as [`Dialer::dial`]'s.
    fn dial_udp(
        &self,
        _backend: &Backend,
        _frontend: &Frontend,
        _connect_timeout: Duration,
    ) -> Option<DatagramDial> {
        None
    }
}

/// Connects straight to the backend's address with a socket from the host seam (marked, with
/// `TCP_NODELAY`, when the factory is `HostSockets::marked`).
#[derive(Clone, Debug)]
pub struct DirectDialer {
    sockets: Arc<dyn SocketFactory>,
}

impl DirectDialer {
    /// Whether the mark may be set was checked when the factory was made
    /// (`HostSockets::marked`), so a missing CAP_NET_ADMIN is a start-up error.
    pub fn new(sockets: Arc<dyn SocketFactory>) -> Self {
        Self { sockets }
    }
}

impl Dialer for DirectDialer {
    fn dial<'a>(
        &'a self,
        backend: &'a Backend,
        _frontend: &'a Frontend,
        connect_timeout: Duration,
    ) -> BoxFuture<'a, io::Result<Upstream>> {
        Box::pin(async move {
            let connect = edgemesh_host::connect(&*self.sockets, backend.addr);
            match tokio::time::timeout(connect_timeout, connect).await {
                Ok(connected) => connected.map(Upstream::Tcp),
                Err(_) => Err(timed_out(connect_timeout)),
            }
        })
    }
}

/// The error of a dial that did not complete within `connect_timeout`.
fn timed_out(connect_timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("connect timed out after {connect_timeout:?}"),
    )
}
