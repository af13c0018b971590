//! Where an intercepted connection was going: the seam between the kernel's REDIRECT and the
//! proxy, so component tests can inject the answer without netfilter.

use std::io;
use std::net::SocketAddr;

use socket2::SockRef;
use tokio::net::TcpStream;

/// Finds the address a client originally dialed before a REDIRECT rule sent it to us.
pub trait OriginalDst: Send + Sync + 'static {
    fn original_dst(&self, stream: &TcpStream) -> io::Result<SocketAddr>;
}

/// The kernel's answer through `SO_ORIGINAL_DST` (`IP6T_SO_ORIGINAL_DST` for IPv6).
#[derive(Clone, Copy, Debug, Default)]
pub struct SoOriginalDst;

impl OriginalDst for SoOriginalDst {
    fn original_dst(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        let socket = SockRef::from(stream);
        let local = stream.local_addr()?;
        // A dual-stack listener sees IPv4 clients as v4-mapped; conntrack still knows them as v4.
        let is_v4 = match local {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some(),
        };
        let addr = if is_v4 {
            socket.original_dst_v4()?
        } else {
            socket.original_dst_v6()?
        };
        addr.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "original destination is not an IP socket address",
            )
        })
    }
}

/// Tests inject a closure.
impl<F> OriginalDst for F
where
    F: Fn(&TcpStream) -> io::Result<SocketAddr> + Send + Sync + 'static,
{
    fn original_dst(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        self(stream)
    }
}
