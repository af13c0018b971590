//! What a [`crate::Tunnel`] is started with (the agent maps EdgeMesh's `modules.edgeTunnel`
//! onto it).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_host::{HostSockets, SocketFactory};

use crate::PskMode;

/// EdgeMesh's default `modules.edgeTunnel.listenPort`.
pub const DEFAULT_LISTEN_PORT: u16 = 20006;

/// One entry of `relayNodes`: a node that serves as relay, and where it can be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayNode {
    pub node_name: String,
    /// IP addresses (EdgeMesh's `advertiseAddress`); the port is the relay's listen port.
    pub advertise_addresses: Vec<IpAddr>,
}

/// Start-up settings of the tunnel.
#[derive(Clone, Debug)]
pub struct TunnelConfig {
    /// This node's name (the Kubernetes Node name).
    pub node_name: String,
    /// Port to listen on (TCP, and UDP for QUIC), on every address of `listen_ips`.
    pub listen_port: u16,
    /// The port relays listen on: the agents' `listenPort`. The same as `listen_port` for an
    /// agent; the gateway listens one port higher, beside its node's agent.
    pub relay_port: u16,
    /// QUIC next to TCP, for peers that have proven their membership over TCP (direct and
    /// hole-punched paths; relays stay on TCP). Only with [`PskMode::Noise`].
    pub quic: bool,
    /// Addresses to listen on; empty means `0.0.0.0`.
    pub listen_ips: Vec<IpAddr>,
    /// Relays; when `node_name` is among them this node serves as a relay.
    pub relays: Vec<RelayNode>,
    /// EdgeMesh's PSK file; `None` runs without a private network (not for production).
    pub psk_path: Option<PathBuf>,
    /// How the PSK is applied: all members must agree.
    pub psk_mode: PskMode,
    /// Where the node's identity key lives (created on first start).
    pub key_path: PathBuf,
    /// Where node name ↔ peer id pins are kept; `None` keeps them in memory only.
    pub pins_path: Option<PathBuf>,
    /// How this node proves its name, and which proofs it accepts from others.
    pub node_identity: NodeIdentityConfig,
    /// Find peers of the same LAN by mDNS.
    pub mdns: bool,
    /// This node's own addresses: a SOCKS5 client connecting from one is a process of this
    /// node. (What peers may dial on this node is the Node object's addresses, from the
    /// snapshot: `policy.rs`.)
    pub own_addrs: Vec<IpAddr>,
    /// A tunnelled UDP flow with no datagram either way for this long is closed.
    pub udp_idle_timeout: Duration,
    /// How long an agent waits for the endpoint it was asked to dial.
    pub dial_timeout: Duration,
    /// Where the sockets this node dials (and its SOCKS5 listener) come from; plain host
    /// sockets by default. libp2p makes its own transport sockets.
    pub sockets: Arc<dyn SocketFactory>,
}

impl TunnelConfig {
    /// Defaults for everything but the node name and the key path.
    pub fn new(node_name: impl Into<String>, key_path: impl Into<PathBuf>) -> Self {
        TunnelConfig {
            node_name: node_name.into(),
            listen_port: DEFAULT_LISTEN_PORT,
            relay_port: DEFAULT_LISTEN_PORT,
            quic: false,
            listen_ips: Vec::new(),
            relays: Vec::new(),
            psk_path: None,
            psk_mode: PskMode::default(),
            key_path: key_path.into(),
            pins_path: None,
            node_identity: NodeIdentityConfig::default(),
            mdns: true,
            own_addrs: Vec::new(),
            udp_idle_timeout: Duration::from_secs(60),
            dial_timeout: Duration::from_secs(5),
            sockets: Arc::new(HostSockets::default()),
        }
    }

    /// Whether this node is named in `relayNodes`.
    pub fn is_relay(&self) -> bool {
        self.relays.iter().any(|r| r.node_name == self.node_name)
    }
}

/// A node certificate (PEM, the node's first, then any intermediates) and its private key (PEM;
/// may be the same file, as kubelet's `kubelet-client-current.pem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a node does with a peer that does not prove its node name with a node certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnattestedPeers {
    /// `Refuse` when this node's own certificate proves its name to its own trust anchors and
    /// the PSK is in `noise` mode (no EdgeMesh Go agent can be a member); otherwise
    /// `TrustOnFirstUse`.
    #[default]
    Auto,
    /// Every peer must attest its name.
    Refuse,
    /// A peer that does not attest is pinned on first use, unless its name has been attested.
    TrustOnFirstUse,
}

/// Node attestation settings (`modules.edgeTunnel.nodeIdentity`).
#[derive(Clone, Debug, Default)]
pub struct NodeIdentityConfig {
    /// This node's credential; `None`: it cannot attest.
    pub credential: Option<CredentialFiles>,
    /// CA certificates (PEM) trusted to issue node certificates.
    pub ca_files: Vec<PathBuf>,
    /// Certificates every member may hold (EdgeMesh's shared `metaServerSecret` `server.crt`):
    /// an attestation made with one proves nothing.
    pub shared_cert_files: Vec<PathBuf>,
    pub unattested: UnattestedPeers,
}
