//! Every socket edgemesh opens comes from a [`SocketFactory`], so the options that decide how
//! the host treats its traffic are set in one place:
//!
//! - sockets that *send out* — TCP sockets to dial from ([`SocketFactory::new_tcp_v4`],
//!   [`SocketFactory::new_tcp_v6`]) and connected UDP upstreams ([`SocketFactory::udp_connect`])
//!   — carry the bypass mark (`SO_MARK`), so the netfilter rules never intercept the agent's own
//!   connections again; TCP ones also get `TCP_NODELAY` (a relay forwards what it was given at
//!   once);
//! - listeners and bound UDP sockets are plain (a mark on a listener would be inherited by every
//!   accepted connection);
//! - transparent UDP sockets ([`SocketFactory::udp_transparent`]) get `IP_TRANSPARENT`, for the
//!   TPROXY receiver and for replies sent from a service address the host does not own;
//! - UDP sockets of the data path get a receive buffer sized for bursts (the default ~200 KiB
//!   dropped half of a 1,000-datagram burst at the TPROXY receiver).
//!
//! Connections the proxy relays get TCP keepalive ([`keep_alive`]), so a peer that vanished
//! without a FIN or RST is found and its sockets freed.
//!
//! Test code may open plain sockets directly; product code asks the factory.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

/// Backlog of listeners, tokio's own (`TcpListener::bind`).
const LISTEN_BACKLOG: u32 = 1024;

/// Receive buffer of the transparent UDP sockets: the TPROXY receiver takes every UDP service's
/// datagrams, so a burst from many clients queues here. Memory is used only while datagrams
/// wait.
pub const TRANSPARENT_RECEIVE_BUFFER: usize = 4 << 20;
/// Receive buffer of a connected UDP upstream (one flow's replies).
pub const UPSTREAM_RECEIVE_BUFFER: usize = 512 << 10;

/// Makes the sockets of one process (ztunnel's `SocketFactory`). Must be called inside a tokio
/// runtime: the sockets are registered with its reactor.
pub trait SocketFactory: Send + Sync + fmt::Debug {
    /// An IPv4 TCP socket to dial from (marked, nodelay).
    fn new_tcp_v4(&self) -> io::Result<TcpSocket>;
    /// An IPv6 TCP socket to dial from (marked, nodelay).
    fn new_tcp_v6(&self) -> io::Result<TcpSocket>;
    /// A listener on `addr` (`SO_REUSEADDR`, as `tokio::net::TcpListener::bind`).
    fn tcp_bind(&self, addr: SocketAddr) -> io::Result<TcpListener>;
    /// A UDP socket bound to `addr` (as `tokio::net::UdpSocket::bind`).
    fn udp_bind(&self, addr: SocketAddr) -> io::Result<UdpSocket>;
    /// A UDP socket connected to `peer` from an ephemeral port (marked): datagrams from anyone
    /// else are dropped by the kernel.
    fn udp_connect(&self, peer: SocketAddr) -> io::Result<UdpSocket>;
    /// A UDP socket bound to `addr` with `IP_TRANSPARENT` and `SO_REUSEADDR`: it may bind an
    /// address the host does not own and receive what TPROXY delivers. Needs CAP_NET_ADMIN.
    fn udp_transparent(&self, addr: SocketAddr) -> io::Result<UdpSocket>;

    /// A TCP socket to dial `addr` from, of `addr`'s family.
    fn new_tcp_for(&self, addr: SocketAddr) -> io::Result<TcpSocket> {
        match addr {
            SocketAddr::V4(_) => self.new_tcp_v4(),
            SocketAddr::V6(_) => self.new_tcp_v6(),
        }
    }
}

/// Connects to `addr` with a socket from `sockets`.
pub async fn connect(sockets: &dyn SocketFactory, addr: SocketAddr) -> io::Result<TcpStream> {
    sockets.new_tcp_for(addr)?.connect(addr).await
}

/// The factory of the real host. `HostSockets::default()` marks nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostSockets {
    mark: u32,
}

/// Why a [`HostSockets`] cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    #[error(
        "setting SO_MARK {mark:#x} on upstream sockets is not permitted ({error}); run with \
         CAP_NET_ADMIN or set the mark to 0 (then the netfilter rules cannot exempt the agent's \
         own connections)"
    )]
    MarkNotPermitted { mark: u32, error: io::Error },
}

impl HostSockets {
    /// Sockets that send out carry `mark` (0: no mark). Checks once that the mark can be set, so
    /// a missing CAP_NET_ADMIN is a start-up error that says what to do, not a failure of every
    /// connection later.
    pub fn marked(mark: u32) -> Result<Self, SocketError> {
        if mark != 0 {
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
                .and_then(|probe| probe.set_mark(mark))
                .map_err(|error| SocketError::MarkNotPermitted { mark, error })?;
        }
        Ok(Self { mark })
    }

    /// The bypass mark on sockets that send out; 0 when none.
    pub fn mark(&self) -> u32 {
        self.mark
    }

    fn apply_mark(&self, socket: SockRef<'_>) -> io::Result<()> {
        if self.mark != 0 {
            socket.set_mark(self.mark)?;
        }
        Ok(())
    }

    fn dialing(&self, socket: TcpSocket) -> io::Result<TcpSocket> {
        self.apply_mark(SockRef::from(&socket))?;
        socket.set_nodelay(true)?;
        Ok(socket)
    }
}

impl SocketFactory for HostSockets {
    fn new_tcp_v4(&self) -> io::Result<TcpSocket> {
        self.dialing(TcpSocket::new_v4()?)
    }

    fn new_tcp_v6(&self) -> io::Result<TcpSocket> {
        self.dialing(TcpSocket::new_v6()?)
    }

    fn tcp_bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    }

    fn udp_bind(&self, addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        UdpSocket::from_std(socket)
    }

    fn udp_connect(&self, peer: SocketAddr) -> io::Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(peer), Type::DGRAM, Some(Protocol::UDP))?;
        self.apply_mark(SockRef::from(&socket))?;
        size_receive_buffer(&socket, UPSTREAM_RECEIVE_BUFFER)?;
        socket.set_nonblocking(true)?;
        socket.connect(&peer.into())?;
        UdpSocket::from_std(socket.into())
    }

    fn udp_transparent(&self, addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        match addr {
            SocketAddr::V4(_) => socket.set_ip_transparent_v4(true)?,
            SocketAddr::V6(_) => socket.set_ip_transparent_v6(true)?,
        }
        socket.set_reuse_address(true)?;
        size_receive_buffer(&socket, TRANSPARENT_RECEIVE_BUFFER)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        UdpSocket::from_std(socket.into())
    }
}

/// TCP keepalive of a relayed connection: after `idle` without a byte received, a probe every
/// `interval`; `count` unanswered probes and the kernel resets the connection (the relay then
/// sees an error and closes the other side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Keepalive {
    /// 60 s idle, then 6 probes 10 s apart: a dead peer is found within 2 minutes, and a live
    /// idle connection costs one empty segment a minute each way. 60 s is also below the
    /// shortest NAT/firewall idle timeouts of home routers and clouds (AWS NLB 350 s, GCP 600 s,
    /// many CPE boxes 300 s), so the probes keep the mapping of a quiet connection alive.
    pub const RELAYED: Self = Self {
        idle: Duration::from_secs(60),
        interval: Duration::from_secs(10),
        count: 6,
    };

    /// When a peer that stopped answering is given up: `idle + count × interval`.
    pub fn dead_after(&self) -> Duration {
        self.idle + self.interval * self.count
    }
}

/// Turns on TCP keepalive (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`) on
/// a connected or accepted socket.
pub fn keep_alive(stream: &TcpStream, params: Keepalive) -> io::Result<()> {
    let params = TcpKeepalive::new()
        .with_time(params.idle)
        .with_interval(params.interval)
        .with_retries(params.count);
    SockRef::from(stream).set_tcp_keepalive(&params)
}

/// `SO_RCVBUFFORCE` (CAP_NET_ADMIN: past `net.core.rmem_max`), else `SO_RCVBUF`, which the
/// kernel caps at `rmem_max`.
fn size_receive_buffer(socket: &Socket, bytes: usize) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::RcvBufForce};
    if setsockopt(socket, RcvBufForce, &bytes).is_ok() {
        return Ok(());
    }
    socket.set_recv_buffer_size(bytes)
}

/// Raises the soft limit on open files to the hard limit. Every proxied connection, UDP flow and
/// tunnel stream holds descriptors; the inherited soft limit (often 1,024) ran out under load
/// (`Too many open files` in accept) while the hard limit allowed far more. Best effort: a limit
/// that cannot be raised is kept, and the process still runs.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Descriptors the data path leaves to the rest of the process (the admin endpoint, the
/// manifests watcher, DNS, the tunnel) once it has used its share: at most this many, and at
/// most a quarter of the limit.
pub const FD_RESERVE: u64 = 256;

/// Whether `fd` lies in the reserve: a descriptor the data path must not keep (close it and
/// refuse the connection or flow it was for).
///
/// The kernel hands out the lowest free number, so a descriptor numbered `n` means at least `n`
/// others are open: one at or above `limit - reserve` means the process has reached the data
/// path's share. The data path checks every socket it keeps for a connection or flow, so it
/// never holds one of the top numbers, and those stay free for the rest of the process (which
/// used to fail with `Too many open files` in the admin endpoint's accept and the manifests
/// watcher while proxied connections held every descriptor, issue #17). One comparison and a
/// `getrlimit` per socket; the limit is read each time, so a limit lowered at run time (`prlimit`)
/// counts at once.
pub fn fd_in_reserve(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::sys::resource::{Resource, getrlimit};
    use std::os::fd::AsRawFd as _;
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return false;
    };
    // rlim_t is u32 on 32-bit ARM (armv7 edge nodes), u64 elsewhere.
    #[allow(clippy::useless_conversion)]
    let soft = u64::from(soft);
    let reserve = FD_RESERVE.min(soft / 4);
    let number = u64::try_from(fd.as_raw_fd()).unwrap_or(0);
    number + reserve >= soft
}
