//! `modules.edgeTunnel`: node-to-node streams across NAT (direct, hole-punched, relayed).

use serde::Deserialize;

use crate::checked::{Checked, Port, PskMode, Transport};
use crate::nullable;

/// `modules.edgeTunnel`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EdgeTunnel {
    pub enable: bool,
    pub listen_port: Checked<Port>,
    pub transport: Checked<Transport>,
    /// Identifies a group of tunnel peers (EdgeMesh's default keeps its typo).
    pub rendezvous: String,
    #[serde(deserialize_with = "nullable")]
    pub relay_nodes: Vec<RelayNode>,
    pub enable_ipfs_log: bool,
    /// Relay candidates buffered (EdgeMesh raises it to the number of relay nodes).
    pub max_candidates: i64,
    /// Seconds between heartbeats to relay peers.
    pub heartbeat_period: i64,
    /// Seconds between relay finder runs.
    pub finder_period: i64,
    #[serde(deserialize_with = "nullable")]
    pub psk: Psk,
    #[serde(deserialize_with = "nullable")]
    pub tunnel_limit_config: TunnelLimitConfig,
    /// `*` or a comma list of interfaces to listen on.
    pub listen_interfaces: String,
    /// Comma list of interfaces never to listen on (besides docker*, edgemesh*, tunl*, ...).
    pub extra_filtered_interfaces: String,
    #[serde(deserialize_with = "nullable")]
    pub metric_config: MetricConfig,
}

impl Default for EdgeTunnel {
    fn default() -> Self {
        Self {
            enable: false,
            listen_port: Checked::new(Port(20006)),
            transport: Checked::new(Transport::Tcp),
            rendezvous: "EDGEMESH_PLAYGOUND".to_owned(),
            relay_nodes: Vec::new(),
            enable_ipfs_log: false,
            max_candidates: 15,
            heartbeat_period: 120,
            finder_period: 60,
            psk: Psk::default(),
            tunnel_limit_config: TunnelLimitConfig::default(),
            listen_interfaces: "*".to_owned(),
            extra_filtered_interfaces: String::new(),
            metric_config: MetricConfig::default(),
        }
    }
}

/// One entry of `modules.edgeTunnel.relayNodes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RelayNode {
    /// The Kubernetes node name of the relay.
    pub node_name: String,
    /// IP addresses other nodes dial the relay at.
    #[serde(deserialize_with = "nullable")]
    pub advertise_address: Vec<String>,
}

/// `modules.edgeTunnel.psk`: the mesh's pre-shared key file, and how it is applied.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Psk {
    pub enable: bool,
    pub path: String,
    /// edgemesh extension: `noise` (default) or `pnet` (while EdgeMesh's Go agents are in the
    /// mesh); every node must use the same.
    pub mode: Checked<PskMode>,
}

impl Default for Psk {
    fn default() -> Self {
        Self {
            enable: true,
            path: "/etc/edgemesh/psk".to_owned(),
            mode: Checked::new(PskMode::Noise),
        }
    }
}

/// `modules.edgeTunnel.tunnelLimitConfig`: stream limits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TunnelLimitConfig {
    pub enable: bool,
    pub tunnel_base_stream_in: i64,
    pub tunnel_base_stream_out: i64,
    /// EdgeMesh's own docs spell it `TunnelPeerBaseStreamIn` (Go matches keys case-insensitively).
    #[serde(alias = "TunnelPeerBaseStreamIn")]
    pub tunnel_peer_base_stream_in: i64,
    pub tunnel_peer_base_stream_out: i64,
}

impl Default for TunnelLimitConfig {
    fn default() -> Self {
        Self {
            enable: true,
            tunnel_base_stream_in: 10240,
            tunnel_base_stream_out: 10240,
            tunnel_peer_base_stream_in: 1024,
            tunnel_peer_base_stream_out: 1024,
        }
    }
}

/// `modules.edgeTunnel.metricConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetricConfig {
    pub enable: bool,
    pub port: Checked<Port>,
}

impl Default for MetricConfig {
    fn default() -> Self {
        Self {
            enable: false,
            port: Checked::new(Port(9999)),
        }
    }
}
