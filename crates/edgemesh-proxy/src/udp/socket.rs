//! The sockets of the UDP path: the one `IP_TRANSPARENT` receiver for every UDP service, the
//! per-session reply socket that speaks *from* the service address, and the marked upstream.
//! Each comes from the host seam ([`SocketFactory`]), which sets their options.

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use edgemesh_host::SocketFactory;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt,
    sockopt::{Ipv4OrigDstAddr, RxqOvfl},
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::ProxyError;

/// A datagram as TPROXY handed it over: who sent it and where it was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub client: SocketAddr,
    pub original_dst: SocketAddr,
    /// Datagrams the kernel dropped at this socket since it was opened, because its receive
    /// buffer was full (`SO_RXQ_OVFL`; absent until the first drop).
    pub kernel_drops: Option<u32>,
}

/// The transparent receiver (IPv4). It expects the netfilter side to deliver intercepted UDP
/// with `tproxy ip to :PORT` (see the [`super`] docs for the full rule set).
#[derive(Debug)]
pub struct TproxySocket {
    socket: UdpSocket,
}

impl TproxySocket {
    /// Binds the receiver; needs CAP_NET_ADMIN (`IP_TRANSPARENT`).
    pub fn bind(sockets: &dyn SocketFactory, addr: SocketAddrV4) -> Result<Self, ProxyError> {
        let setup = |what| move |error| ProxyError::UdpSetup { what, error };
        let socket = sockets
            .udp_transparent(SocketAddr::V4(addr))
            .map_err(setup("transparent bind"))?;
        setsockopt(&socket, Ipv4OrigDstAddr, &true)
            .map_err(|e| setup("IP_RECVORIGDSTADDR")(e.into()))?;
        setsockopt(&socket, RxqOvfl, &1).map_err(|e| setup("SO_RXQ_OVFL")(e.into()))?;
        Ok(Self { socket })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits for the next datagram and reads it with its original destination.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        self.socket
            .async_io(Interest::READABLE, || {
                recv_with_original_dst(&self.socket, buf)
            })
            .await
    }
}

fn recv_with_original_dst(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let mut cmsg = nix::cmsg_space!(nix::libc::sockaddr_in, u32);
    let mut iov = [IoSliceMut::new(buf)];
    let fd = socket.as_raw_fd();
    let msg = recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)?;
    let client = msg
        .address
        .map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without source"))?;
    let (mut original_dst, mut kernel_drops) = (None, None);
    for cmsg in msg.cmsgs()? {
        match cmsg {
            ControlMessageOwned::Ipv4OrigDstAddr(sa) => {
                original_dst = Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
                    u16::from_be(sa.sin_port),
                )));
            }
            ControlMessageOwned::RxqOvfl(drops) => kernel_drops = Some(drops),
            _ => {}
        }
    }
    let original_dst = original_dst
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no IP_ORIGDSTADDR"))?;
    Ok(Received {
        len: msg.bytes,
        client,
        original_dst,
        kernel_drops,
    })
}

/// A socket bound (transparently) to the service address, used only to send replies so the
/// client sees them come from the address it sent to. It stays unconnected on purpose: a
/// connected one would match TPROXY's "established" lookup and swallow the client's next
/// datagrams.
pub fn reply_socket(sockets: &dyn SocketFactory, from: SocketAddr) -> io::Result<UdpSocket> {
    sockets.udp_transparent(from)
}

/// A marked socket connected to the backend (replies from anyone else are dropped by the kernel).
pub fn upstream_socket(sockets: &dyn SocketFactory, backend: SocketAddr) -> io::Result<UdpSocket> {
    sockets.udp_connect(backend)
}
