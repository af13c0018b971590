//! Node-to-node streams across NAT for edgemesh: direct in a LAN, hole-punched when NAT allows,
//! relayed otherwise — on rust-libp2p, speaking EdgeMesh's tunnel protocol.
//!
//! - [`Tunnel::start`] builds the libp2p node (TCP + noise with the PSK + yamux, relay v2, DCUtR,
//!   identify, ping, mDNS) and serves inbound tunnel streams.
//! - [`TunnelHandle::open_tcp`] / [`TunnelHandle::open_udp`] reach an endpoint on another node;
//!   that node's agent dials it only if it is a ready endpoint on that node in *its* snapshot.
//! - [`TunnelDialer`] plugs the tunnel into the proxy's `Dialer` seam.
//! - [`TunnelHandle::peers`] is the data of `/debug/peers`.
//! - [`Socks5Server`] reaches nodes by name through the tunnel (`socks5Proxy`).
//! - [`settings`]: EdgeMesh's `modules.edgeTunnel` → [`settings::TunnelSettings`], and the
//!   agent's start-up of the tunnel and SOCKS5 from them; [`relays_reload`] applies the relay
//!   list of a changed config file live.
//!
//! Security model: the PSK keeps non-members out (in the noise handshake, or pnet as EdgeMesh
//! does: [`PskMode`]); each node has its own random key ([`identity`]); node names are bound to
//! keys by the node's certificate ([`attest`]), or pinned on first use where no certificate
//! exists ([`pins`]). See `docs/tunnel.md`.
#![forbid(unsafe_code)]

pub mod attest;
mod behaviour;
mod client;
mod command;
pub mod config;
pub mod dialer;
mod discovery;
mod driver;
mod error;
mod fate;
mod fsutil;
pub mod identity;
mod inbound;
mod keepalive;
pub mod metrics;
pub mod pins;
pub mod policy;
pub mod psk;
mod punch;
mod quic_gate;
pub mod relays_reload;
mod server;
pub mod settings;
mod shared;
mod slots;
pub mod snapshot_file;
pub mod socks5;
pub mod stats;
pub mod udp;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgemesh_model::SnapshotCell;
use libp2p::multiaddr::Protocol as Ma;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{Notify, mpsc, oneshot};

pub use client::TunnelStream;
pub use config::{
    CredentialFiles, DEFAULT_LISTEN_PORT, NodeIdentityConfig, RelayNode, TunnelConfig,
    UnattestedPeers,
};
pub use dialer::TunnelDialer;
pub use error::{ConnectFailure, TunnelError};
pub use metrics::PeersView;
pub use psk::PskMode;
pub use socks5::Socks5Server;
pub use stats::{PathKind, PeerReport, TransportKind};
pub use udp::UdpTunnel;

use command::{Command, ConnSummary};
use policy::WireProtocol;
use shared::{Directory, Shared};

/// A running tunnel. Dropping every handle does not stop it; [`Tunnel::stop`] does.
#[derive(Debug)]
pub struct Tunnel {
    handle: TunnelHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A cheap, cloneable handle to a running tunnel.
#[derive(Debug, Clone)]
pub struct TunnelHandle {
    shared: Arc<Shared>,
    peer_id: PeerId,
}

impl Tunnel {
    /// Loads the key (creating it once), the PSK and the pins, listens, and starts serving.
    /// Must be called inside a tokio runtime.
    pub fn start(config: TunnelConfig, snapshot: Arc<SnapshotCell>) -> Result<Tunnel, TunnelError> {
        if config.quic && config.psk_mode == PskMode::Pnet {
            return Err(TunnelError::QuicWithPnet);
        }
        let keypair = identity::load_or_create_keypair(&config.key_path)?;
        let peer_id = keypair.public().to_peer_id();
        let membership = psk::Membership::load(config.psk_path.as_deref(), config.psk_mode)?;
        let identity = attest::NodeIdentity::resolve(
            &config.node_identity,
            &config.node_name,
            peer_id,
            config.psk_mode,
        )?;
        let pins = match &config.pins_path {
            Some(path) => pins::PeerPins::load(path)?,
            None => pins::PeerPins::in_memory(),
        };
        let options = behaviour::StackOptions {
            relay_server: config.is_relay(),
            mdns: config.mdns,
            quic: config.quic,
        };
        let fates = fate::Fates::default();
        let (proxy_inbound, proxy_in) = inbound::Inbound::new(wire::PROXY_PROTOCOL);
        let mut swarm =
            behaviour::build_swarm(keypair, membership, options, &fates, proxy_inbound)?;
        listen(&mut swarm, &config)?;
        let mut control = swarm.behaviour().stream.new_control();
        let discovery_in = control
            .accept(wire::DISCOVERY_PROTOCOL)
            .map_err(|e| TunnelError::Swarm(e.to_string()))?;
        let attest_in = control
            .accept(attest::ATTEST_PROTOCOL)
            .map_err(|e| TunnelError::Swarm(e.to_string()))?;
        let (commands, command_rx) = mpsc::channel(256);
        let shared = Arc::new(Shared {
            directory: Mutex::new(Directory {
                pins,
                live: HashMap::new(),
                relays: Default::default(),
            }),
            directory_changed: Notify::new(),
            counters: Mutex::new(HashMap::new()),
            stream_slots: Mutex::new(HashMap::new()),
            commands,
            control: Mutex::new(control),
            handshake_failures: Default::default(),
            udp_flows_yielded: Default::default(),
            pins_saving: Default::default(),
            snapshot,
            config,
            peer_id,
            identity,
        });
        tracing::info!(node = %shared.me(), peer.id = %peer_id, relay = shared.config.is_relay(), "tunnel starting");
        let driver = driver::Driver::new(swarm, Arc::clone(&shared), fates);
        let tasks = vec![
            tokio::spawn(driver.run(command_rx)),
            tokio::spawn(server::serve(Arc::clone(&shared), proxy_in)),
            tokio::spawn(discovery::serve(Arc::clone(&shared), discovery_in)),
            tokio::spawn(attest::serve(Arc::clone(&shared), attest_in)),
        ];
        Ok(Tunnel {
            handle: TunnelHandle { shared, peer_id },
            tasks,
        })
    }

    pub fn handle(&self) -> TunnelHandle {
        self.handle.clone()
    }

    /// Stops the swarm and the stream servers (open streams end).
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Listens on every configured address; a relay also announces its advertise addresses as
/// confirmed external addresses (a relay does not offer the hop protocol without one).
fn listen(
    swarm: &mut libp2p::Swarm<behaviour::Behaviour>,
    config: &TunnelConfig,
) -> Result<(), TunnelError> {
    let unspecified = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
    let ips = if config.listen_ips.is_empty() {
        &unspecified[..]
    } else {
        &config.listen_ips[..]
    };
    for ip in ips {
        let tcp = Multiaddr::from(*ip).with(Ma::Tcp(config.listen_port));
        let quic = Multiaddr::from(*ip)
            .with(Ma::Udp(config.listen_port))
            .with(Ma::QuicV1);
        let addrs = std::iter::once(tcp).chain(config.quic.then_some(quic));
        for addr in addrs {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| TunnelError::ListenAddr {
                    addr: addr.to_string(),
                    reason: error::root_cause(&e),
                })?;
        }
    }
    let me = config
        .relays
        .iter()
        .filter(|r| r.node_name == config.node_name);
    for ip in me.flat_map(|r| r.advertise_addresses.iter()) {
        swarm.add_external_address(Multiaddr::from(*ip).with(Ma::Tcp(config.listen_port)));
    }
    Ok(())
}

impl TunnelHandle {
    /// This node's own addresses (`TunnelConfig::own_addrs`).
    pub(crate) fn own_addrs(&self) -> &[IpAddr] {
        &self.shared.config.own_addrs
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        self.shared.me()
    }

    /// Whether the swarm driver still runs (its command channel closes when it ends).
    pub fn driver_running(&self) -> bool {
        !self.shared.commands.is_closed()
    }

    /// Transport handshakes that failed, most likely on the PSK (another key, or another
    /// `psk.mode`), since the tunnel started.
    pub fn handshake_failures(&self) -> u64 {
        self.shared
            .handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Remote UDP flows that, idle while opens to their peer waited for a stream slot, gave
    /// theirs up, since the tunnel started.
    pub fn udp_flows_yielded(&self) -> u64 {
        self.shared
            .udp_flows_yielded
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This node's peer id (derived from its key).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A TCP stream to `target`, an endpoint on `node`, dialled by `node`'s agent.
    ///
    /// `connect_timeout` bounds the open's own work (reaching the peer, opening the stream, the
    /// remote dial): a caller's connect timeout belongs there. Waiting for one of the peer's
    /// stream slots is queueing (back-pressure, up to 60 s, then [`TunnelError::Busy`]) and is
    /// not counted, so a burst of opens to one peer is served in turn instead of failing.
    /// `None`: only the tunnel's own bound on each phase.
    pub async fn open_tcp(
        &self,
        node: &str,
        target: SocketAddr,
        connect_timeout: Option<Duration>,
    ) -> Result<TunnelStream, TunnelError> {
        let mut budget = client::Budget::new(connect_timeout);
        client::open(&self.shared, node, WireProtocol::Tcp, target, &mut budget).await
    }

    /// A UDP flow to `target`, an endpoint on `node` (one stream for the whole flow), opened as
    /// [`TunnelHandle::open_tcp`] opens a stream. A node that refuses `udp-framed` is asked
    /// again for EdgeMesh's unframed `udp` (within the same `connect_timeout`): an EdgeMesh Go
    /// agent knows no other (it refuses `udp-framed` as an unsupported protocol). While opens to
    /// the same peer wait for a stream slot, a flow idle for 2 s ends to give its slot up.
    pub async fn open_udp(
        &self,
        node: &str,
        target: SocketAddr,
        connect_timeout: Option<Duration>,
    ) -> Result<UdpTunnel, TunnelError> {
        let mut budget = client::Budget::new(connect_timeout);
        let shared = &self.shared;
        match client::open(shared, node, WireProtocol::UdpFramed, target, &mut budget).await {
            Ok(stream) => Ok(udp_flow(shared, stream, target, udp::Framing::Framed)),
            Err(TunnelError::Refused { .. }) => {
                let legacy = WireProtocol::UdpLegacy;
                let stream = client::open(shared, node, legacy, target, &mut budget).await?;
                Ok(udp_flow(shared, stream, target, udp::Framing::Unframed))
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces `relayNodes` without a restart.
    pub async fn set_relays(&self, relays: Vec<RelayNode>) -> Result<(), TunnelError> {
        self.shared.send(Command::SetRelays(relays)).await
    }

    /// The peers, their paths, RTT and traffic: the data of `/debug/peers`.
    pub async fn peers(&self) -> Result<Vec<PeerReport>, TunnelError> {
        let (reply, answer) = oneshot::channel();
        self.shared.send(Command::Connections { reply }).await?;
        let conns = answer.await.map_err(|_| TunnelError::Stopped)?;
        Ok(stats_report(&self.shared, conns))
    }
}

/// A flow over `stream` that gives its slot up when idle and wanted (`udp::Yielding`).
fn udp_flow(
    shared: &Arc<Shared>,
    stream: TunnelStream,
    target: SocketAddr,
    framing: udp::Framing,
) -> UdpTunnel {
    let yielding = stream.slot_pressure().map(|pressure| udp::Yielding {
        pressure,
        yielded: Arc::clone(&shared.udp_flows_yielded),
    });
    UdpTunnel::spawn(stream, target, framing, yielding)
}

fn stats_report(shared: &Shared, conns: Vec<ConnSummary>) -> Vec<PeerReport> {
    let mut by_peer: std::collections::BTreeMap<PeerId, Vec<ConnSummary>> = Default::default();
    for conn in conns {
        by_peer.entry(conn.peer).or_default().push(conn);
    }
    let dir = shared.directory();
    let names: HashMap<PeerId, String> = dir.live.iter().map(|(n, p)| (*p, n.clone())).collect();
    let relays = dir.relays.clone();
    drop(dir);
    by_peer
        .into_iter()
        .map(|(peer, conns)| {
            let counters = shared.counters(peer);
            // The best path in use (the one new streams take); `direct` before `punched` at par.
            let (path, transport) = conns
                .iter()
                .map(|c| (c.path, c.transport))
                .min_by_key(|(path, transport)| (stats::preference(*path, *transport), *path))
                .unwrap_or((PathKind::Relayed, TransportKind::Tcp));
            PeerReport {
                peer_id: peer.to_string(),
                node_name: names.get(&peer).cloned(),
                path,
                transport,
                addresses: conns.iter().map(|c| c.remote.to_string()).collect(),
                is_relay: relays.contains(&peer),
                rtt_ms: conns
                    .first()
                    .and_then(|c| c.rtt)
                    .map(|d| d.as_secs_f64() * 1000.0),
                streams_open: stats::load(&counters.streams_open),
                streams_total: stats::load(&counters.streams_total),
                bytes_sent: stats::load(&counters.bytes_sent),
                bytes_received: stats::load(&counters.bytes_received),
            }
        })
        .collect()
}
