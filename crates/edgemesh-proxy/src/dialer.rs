//! The seam every upstream connection goes through: a direct socket today, a tunnel stream to
//! the endpoint's node later.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use edgemesh_model::{Backend, Frontend};
use futures::future::BoxFuture;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

use crate::ProxyError;

/// A byte stream that is not a plain TCP socket (e.g. a tunnel stream).
pub trait UpstreamIo: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug> UpstreamIo for T {}

/// A connected upstream. A TCP socket can be spliced; anything else is copied.
#[derive(Debug)]
pub enum Upstream {
    Tcp(TcpStream),
    Stream(Box<dyn UpstreamIo>),
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

/// Opens connections to backends. The proxy bounds each call with its connect timeout.
pub trait Dialer: Send + Sync + 'static {
    fn dial<'a>(
        &'a self,
        backend: &'a Backend,
        frontend: &'a Frontend,
    ) -> BoxFuture<'a, io::Result<Upstream>>;

    /// UDP: `None` (the default) sends the flow's datagrams from a plain marked socket straight
    /// to the backend; `Some` opens a datagram channel instead (an endpoint behind the tunnel).
    fn dial_udp(&self, _backend: &Backend, _frontend: &Frontend) -> Option<DatagramDial> {
        None
    }
}

/// Connects straight to the backend's address with a marked socket.
#[derive(Clone, Copy, Debug)]
pub struct DirectDialer {
    mark: u32,
}

impl DirectDialer {
    /// Checks once that the mark can be set, so a missing CAP_NET_ADMIN is a start-up error
    /// that says what to do, not a failure of every connection later. `mark == 0`: no mark.
    pub fn new(mark: u32) -> Result<Self, ProxyError> {
        if mark != 0 {
            let probe = TcpSocket::new_v4()
                .and_then(|s| SockRef::from(&s).set_mark(mark))
                .map_err(|source| ProxyError::MarkNotPermitted {
                    mark,
                    error: source,
                });
            probe?;
        }
        Ok(Self { mark })
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if self.mark != 0 {
            SockRef::from(&socket).set_mark(self.mark)?;
        }
        socket.set_nodelay(true)?;
        socket.connect(addr).await
    }
}

impl Dialer for DirectDialer {
    fn dial<'a>(
        &'a self,
        backend: &'a Backend,
        _frontend: &'a Frontend,
    ) -> BoxFuture<'a, io::Result<Upstream>> {
        Box::pin(async move { self.connect(backend.addr).await.map(Upstream::Tcp) })
    }
}
