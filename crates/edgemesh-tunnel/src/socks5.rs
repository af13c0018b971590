//! SOCKS5 access to nodes by name (`modules.edgeProxy.socks5Proxy`, EdgeMesh's SSH guide:
//! `ssh -o ProxyCommand="nc --proxy-type socks5 --proxy 169.254.96.16:10800 %h %p" user@node`).
//!
//! Only CONNECT, only without authentication, and only to *nodes*: the destination is a node
//! name (domain address type) or one of a node's addresses, resolved with the Nodes of the
//! snapshot. The stream goes through the tunnel to that node's agent, which dials its own
//! address (its policy allows nothing else for this path). Never an open proxy: an address that
//! is no node's is refused with "not allowed by ruleset".
//!
//! Only the node's own processes may use it (there is no authentication, and whoever uses it
//! reaches every node of the mesh): a client whose address is not the node's — a LAN host that
//! routes 169.254.96.16 via the node, which Linux accepts on any interface, or a pod — is closed
//! at once, logged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_copy::Options;
use edgemesh_model::Snapshot;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::{TunnelError, TunnelHandle};

/// How long a client has to finish the SOCKS handshake (a silent client holds no task forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CMD_CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// SOCKS5 reply codes (RFC 1928 §6) this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    Succeeded = 0x00,
    GeneralFailure = 0x01,
    /// The address is not a node's: the proxy only reaches nodes.
    NotAllowed = 0x02,
    /// The node is unknown, or its agent cannot be reached through the tunnel.
    HostUnreachable = 0x04,
    /// The node's agent could not (or would not) dial the port.
    ConnectionRefused = 0x05,
    CommandNotSupported = 0x07,
    AddressTypeNotSupported = 0x08,
}

/// What the client asked to reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Name(String, u16),
    Ip(SocketAddr),
}

/// Where a destination leads: a node and the address its agent dials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTarget {
    pub node: String,
    pub addr: SocketAddr,
}

/// A SOCKS5 server that reaches nodes through the tunnel.
#[derive(Debug)]
pub struct Socks5Server {
    listener: TcpListener,
    tunnel: TunnelHandle,
}

impl Socks5Server {
    /// Listens on `addr` (e.g. `169.254.96.16:10800`; port 0 picks one).
    pub async fn bind(addr: SocketAddr, tunnel: TunnelHandle) -> Result<Self, TunnelError> {
        let listener = tunnel
            .shared
            .config
            .sockets
            .tcp_bind(addr)
            .map_err(|error| TunnelError::Socks5Bind { addr, error })?;
        Ok(Socks5Server { listener, tunnel })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves clients until the task is dropped or aborted.
    pub async fn serve(self) {
        let tunnel = Arc::new(self.tunnel);
        loop {
            match self.listener.accept().await {
                Ok((client, peer)) if !is_this_node(&tunnel, &self.listener, peer.ip()) => {
                    tracing::warn!(client.addr = %peer, "SOCKS5 refused: only this node's own processes may use it");
                    drop(client);
                }
                // The node has used the data path's share of descriptors: this one is closed at
                // once, leaving the reserve to the admin endpoint, DNS and the sources.
                Ok((client, peer)) if edgemesh_host::fd_in_reserve(client.as_fd()) => {
                    tracing::debug!(client.addr = %peer, "SOCKS5 refused: descriptor reserve reached");
                    drop(client);
                }
                Ok((client, peer)) => {
                    tokio::spawn(serve_client(Arc::clone(&tunnel), client, peer));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "SOCKS5 accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Whether `peer` is this node: loopback, the listen address itself (the node's own source
/// towards it), or one of the node's interface addresses.
fn is_this_node(tunnel: &TunnelHandle, listener: &TcpListener, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    peer.is_loopback()
        || listener.local_addr().is_ok_and(|a| a.ip() == peer)
        || tunnel.own_addrs().contains(&peer)
}

async fn serve_client(tunnel: Arc<TunnelHandle>, mut client: TcpStream, peer: SocketAddr) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, negotiate(&mut client)).await;
    let destination = match handshake {
        Ok(Ok(Ok(destination))) => destination,
        Ok(Ok(Err(reply))) => {
            tracing::info!(client.addr = %peer, ?reply, "SOCKS5 request refused");
            let _ = send_reply(&mut client, reply).await;
            return;
        }
        Ok(Err(error)) => {
            return tracing::debug!(client.addr = %peer, %error, "SOCKS5 handshake failed");
        }
        Err(_) => return tracing::debug!(client.addr = %peer, "SOCKS5 handshake timed out"),
    };
    let snapshot = tunnel.shared.snapshot.load();
    let target = match resolve(&snapshot, &destination) {
        Ok(target) => target,
        Err(reply) => {
            tracing::info!(client.addr = %peer, ?destination, ?reply, "SOCKS5 destination is not a known node");
            let _ = send_reply(&mut client, reply).await;
            return;
        }
    };
    connect_and_splice(&tunnel, client, peer, target).await;
}

async fn connect_and_splice(
    tunnel: &TunnelHandle,
    mut client: TcpStream,
    peer: SocketAddr,
    target: NodeTarget,
) {
    if target.node == tunnel.node_name() {
        // This node itself: no tunnel needed.
        let dialed = tokio::time::timeout(
            tunnel.shared.config.dial_timeout,
            edgemesh_host::connect(&*tunnel.shared.config.sockets, target.addr),
        )
        .await;
        let Ok(Ok(mut upstream)) = dialed else {
            tracing::info!(client.addr = %peer, addr = %target.addr, "SOCKS5: local dial failed");
            let _ = send_reply(&mut client, Reply::ConnectionRefused).await;
            return;
        };
        if send_reply(&mut client, Reply::Succeeded).await.is_ok()
            && edgemesh_copy::both_ways(&mut client, &mut upstream, &(), Options::default())
                .await
                .is_err()
        {
            // One side broke: the other learns it by a reset, not a clean end.
            edgemesh_copy::reset_on_close(&client);
            edgemesh_copy::reset_on_close(&upstream);
        }
        return;
    }
    match tunnel.open_tcp(&target.node, target.addr, None).await {
        Ok(mut stream) => {
            if send_reply(&mut client, Reply::Succeeded).await.is_ok()
                && edgemesh_copy::both_ways(&mut client, &mut stream, &(), Options::default())
                    .await
                    .is_err()
            {
                // The client broke, or the tunnel was lost: the client sees a reset.
                edgemesh_copy::reset_on_close(&client);
            }
        }
        Err(error) => {
            tracing::warn!(client.addr = %peer, node = %target.node, addr = %target.addr, %error, "SOCKS5 CONNECT failed");
            let _ = send_reply(&mut client, reply_for(&error)).await;
        }
    }
}

/// The SOCKS reply that says why the tunnel could not open a stream.
pub fn reply_for(error: &TunnelError) -> Reply {
    match error {
        TunnelError::Refused { .. } => Reply::ConnectionRefused,
        TunnelError::UnknownNode(_) | TunnelError::Connect { .. } => Reply::HostUnreachable,
        _ => Reply::GeneralFailure,
    }
}

/// Method negotiation and the request. The outer error is I/O (the client went away or spoke
/// garbage); the inner one is the reply to send.
async fn negotiate<S>(stream: &mut S) -> std::io::Result<Result<Destination, Reply>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(std::io::Error::other(format!(
            "not SOCKS5 (version byte {:#04x})",
            head[0]
        )));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    stream.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTH) {
        stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        return Err(std::io::Error::other(
            "client offers no 'no authentication' method",
        ));
    }
    stream.write_all(&[VERSION, NO_AUTH]).await?;
    read_request(stream).await
}

/// Reads a request (after method negotiation).
pub async fn read_request<R>(r: &mut R) -> std::io::Result<Result<Destination, Reply>>
where
    R: AsyncRead + Unpin,
{
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    let [version, command, _reserved, atyp] = head;
    if version != VERSION {
        return Err(std::io::Error::other(format!(
            "request version byte {version:#04x}"
        )));
    }
    let host = match atyp {
        ATYP_IPV4 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).await?;
            Host::Ip(IpAddr::V4(Ipv4Addr::from(b)))
        }
        ATYP_IPV6 => {
            let mut b = [0u8; 16];
            r.read_exact(&mut b).await?;
            Host::Ip(IpAddr::V6(Ipv6Addr::from(b)))
        }
        ATYP_DOMAIN => {
            let len = r.read_u8().await?;
            let mut b = vec![0u8; usize::from(len)];
            r.read_exact(&mut b).await?;
            Host::Name(b)
        }
        // The address length is unknown: nothing more can be read sensibly.
        _ => return Ok(Err(Reply::AddressTypeNotSupported)),
    };
    let port = r.read_u16().await?;
    if command != CMD_CONNECT {
        return Ok(Err(Reply::CommandNotSupported));
    }
    Ok(destination(host, port))
}

enum Host {
    Ip(IpAddr),
    Name(Vec<u8>),
}

fn destination(host: Host, port: u16) -> Result<Destination, Reply> {
    match host {
        Host::Ip(ip) => Ok(Destination::Ip(SocketAddr::new(ip, port))),
        Host::Name(bytes) => {
            let name = String::from_utf8(bytes).map_err(|_| Reply::HostUnreachable)?;
            // Some clients send an IP literal as a domain name.
            match name.parse::<IpAddr>() {
                Ok(ip) => Ok(Destination::Ip(SocketAddr::new(ip, port))),
                Err(_) => Ok(Destination::Name(
                    name.trim_end_matches('.').to_ascii_lowercase(),
                    port,
                )),
            }
        }
    }
}

/// Finds the node of a destination: by name (dialled at its InternalIP, else its first
/// address), or by one of its addresses.
pub fn resolve(snapshot: &Snapshot, destination: &Destination) -> Result<NodeTarget, Reply> {
    match destination {
        Destination::Name(name, port) => {
            let node = snapshot.nodes.get(name).ok_or(Reply::HostUnreachable)?;
            let ip = node
                .addresses
                .iter()
                .find(|a| a.kind == "InternalIP")
                .or_else(|| node.addresses.first())
                .map(|a| a.ip)
                .ok_or(Reply::HostUnreachable)?;
            Ok(NodeTarget {
                node: node.name.clone(),
                addr: SocketAddr::new(ip, *port),
            })
        }
        Destination::Ip(addr) => snapshot
            .nodes
            .values()
            .find(|n| n.addresses.iter().any(|a| a.ip == addr.ip()))
            .map(|n| NodeTarget {
                node: n.name.clone(),
                addr: *addr,
            })
            .ok_or(Reply::NotAllowed),
    }
}

/// A reply with an all-zero IPv4 bound address (clients ignore it for CONNECT).
async fn send_reply<W: AsyncWrite + Unpin>(w: &mut W, reply: Reply) -> std::io::Result<()> {
    w.write_all(&[VERSION, reply as u8, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0])
        .await
}

#[cfg(test)]
mod tests;
