//! The remote side of a tunnel stream: read CONNECT, check the destination against this node's
//! snapshot, dial it, answer SUCCESS or FAILED, then copy both ways (edgemesh-copy).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd as _;
use std::sync::Arc;

use edgemesh_copy::Options;
use edgemesh_host::SocketFactory;
use libp2p::{PeerId, Stream};
use tokio::net::UdpSocket;
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

use crate::policy::{WireProtocol, check_destination};
use crate::shared::Shared;
use crate::stats::Counted;
use crate::udp;
use crate::wire::{self, MsgType, Proxy};

/// Serves inbound proxy streams until the tunnel stops.
pub(crate) async fn serve(shared: Arc<Shared>, mut incoming: crate::inbound::Incoming) {
    while let Some((peer, stream)) = incoming.recv().await {
        tokio::spawn(handle(Arc::clone(&shared), peer, stream));
    }
}

/// A CONNECT, validated.
struct Request {
    protocol: WireProtocol,
    target: SocketAddr,
}

fn parse(msg: &Proxy) -> Result<Request, String> {
    if msg.kind() != Some(MsgType::Connect) {
        return Err(format!("expected CONNECT, got {:?}", msg.kind()));
    }
    let proto = msg.protocol.as_deref().unwrap_or_default();
    let protocol =
        WireProtocol::parse(proto).ok_or_else(|| format!("unknown protocol '{proto}'"))?;
    let ip: IpAddr = msg.ip.as_deref().unwrap_or_default().parse().map_err(|_| {
        format!(
            "'{}' is not an IP address",
            msg.ip.as_deref().unwrap_or_default()
        )
    })?;
    let port = msg
        .port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port {:?}", msg.port))?;
    Ok(Request {
        protocol,
        target: SocketAddr::new(ip, port),
    })
}

async fn handle(shared: Arc<Shared>, peer: PeerId, mut stream: Stream) {
    let Ok(msg) = wire::read_msg::<_, Proxy>(&mut stream).await else {
        return;
    };
    let request = match parse(&msg) {
        Ok(request) => request,
        Err(reason) => return refuse(stream, peer, &reason).await,
    };
    let snapshot = shared.snapshot.load();
    let cfg = &shared.config;
    let verdict = check_destination(&snapshot, &cfg.node_name, request.protocol, request.target);
    if !verdict.allowed() {
        let reason = format!(
            "{} {} is {} (refused by node {})",
            request.protocol.as_str(),
            request.target,
            verdict.refusal(),
            cfg.node_name
        );
        return refuse(stream, peer, &reason).await;
    }
    let counters = shared.counters(peer);
    match request.protocol {
        WireProtocol::Tcp => {
            let dialed = tokio::time::timeout(
                cfg.dial_timeout,
                edgemesh_host::connect(&*cfg.sockets, request.target),
            )
            .await;
            let upstream = match dialed {
                Ok(Ok(upstream)) => upstream,
                Ok(Err(error)) => {
                    let reason = dial_failure(&error, request.target, &cfg.node_name);
                    return refuse(stream, peer, &reason).await;
                }
                Err(_) => {
                    let reason = format!(
                        "no answer from {} within {:?} on node {}",
                        request.target, cfg.dial_timeout, cfg.node_name
                    );
                    return refuse(stream, peer, &reason).await;
                }
            };
            if edgemesh_host::fd_in_reserve(upstream.as_fd()) {
                return refuse(stream, peer, &reserve_reached(&cfg.node_name)).await;
            }
            let _ = upstream.set_nodelay(true);
            if wire::write_msg(&mut stream, &Proxy::answer(MsgType::Success))
                .await
                .is_err()
            {
                return;
            }
            let mut tunnel = Counted::new(stream.compat(), counters);
            let mut upstream = upstream;
            let copied =
                edgemesh_copy::both_ways(&mut tunnel, &mut upstream, &(), Options::default()).await;
            if let Err(broke) = copied {
                // The tunnel was lost (its connection died: the other agent killed, the path
                // cut), or the backend broke: the backend gets a reset, never the clean end
                // that would make a cut-short upload look complete. (A broken backend leaves
                // the stream dropped unclosed: yamux resets it.)
                tracing::debug!(peer.id = %peer, target = %request.target, error = %broke, "tunnelled connection broke");
                edgemesh_copy::reset_on_close(&upstream);
            }
        }
        _ => {
            let socket = match udp_socket(&*cfg.sockets, request.target) {
                Ok(socket) if edgemesh_host::fd_in_reserve(socket.as_fd()) => {
                    return refuse(stream, peer, &reserve_reached(&cfg.node_name)).await;
                }
                Ok(socket) => socket,
                Err(error) => {
                    let reason = format!(
                        "UDP socket to {} failed on node {}: {error}",
                        request.target, cfg.node_name
                    );
                    return refuse(stream, peer, &reason).await;
                }
            };
            if wire::write_msg(&mut stream, &Proxy::answer(MsgType::Success))
                .await
                .is_err()
            {
                return;
            }
            let tunnel = Counted::new(stream.compat(), counters);
            let framing = match request.protocol {
                WireProtocol::UdpLegacy => udp::Framing::Unframed,
                _ => udp::Framing::Framed,
            };
            udp::serve_remote(tunnel, socket, cfg.udp_idle_timeout, framing).await;
        }
    }
}

fn udp_socket(sockets: &dyn SocketFactory, target: SocketAddr) -> std::io::Result<UdpSocket> {
    sockets.udp_connect(target)
}

/// What the client is told when the dial to `target` failed: the kernel's words, as
/// `connect(2)` would have said them to the client had it dialled itself.
fn dial_failure(error: &std::io::Error, target: SocketAddr, node: &str) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {target} on node {node}")
        }
        _ => format!("dial {target} failed on node {node}: {error}"),
    }
}

/// Answers FAILED with `reason` (our agents show it to the client; Go agents ignore it).
async fn refuse(mut stream: Stream, peer: PeerId, reason: &str) {
    tracing::warn!(peer.id = %peer, %reason, "tunnel request refused");
    let _ = wire::write_msg(&mut stream, &Proxy::failed(reason)).await;
}

/// Why a dial was refused whose socket lay in the descriptor reserve
/// (`edgemesh_host::fd_in_reserve`): the node's data path has used its share of descriptors, and
/// the rest is kept for its admin endpoint, manifests watcher, DNS and tunnel.
fn reserve_reached(node: &str) -> String {
    format!("node {node} has used its data path's share of file descriptors")
}
