//! `modules.edgeTunnel`: node-to-node streams across NAT (direct, hole-punched, relayed).

use serde::Deserialize;

use crate::checked::{Checked, Port, PskMode, Transport, config_words};
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
    /// edgemesh extension: how a node proves its name to the others.
    #[serde(deserialize_with = "nullable")]
    pub node_identity: NodeIdentity,
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
            node_identity: NodeIdentity::default(),
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

/// Where kubelet and KubeEdge's edgecore keep a node's client certificate and key
/// (`CN=system:node:<name>`, `O=system:nodes`), in the order they are looked for.
pub const DEFAULT_NODE_CREDENTIALS: &[(&str, &str)] = &[
    (
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
        "/var/lib/kubelet/pki/kubelet-client-current.pem",
    ),
    (
        "/etc/kubeedge/certs/server.crt",
        "/etc/kubeedge/certs/server.key",
    ),
];

/// CAs that issue node certificates: KubeEdge cloudcore's (on edge nodes, and in EdgeMesh's
/// `metaServerSecret`), and the cluster CA (every pod's service-account `ca.crt`).
pub const DEFAULT_NODE_CAS: &[&str] = &[
    "/etc/kubeedge/ca/rootCA.crt",
    "/etc/edgemesh/metaserver/rootCA.crt",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
];

/// `modules.edgeTunnel.nodeIdentity` (edgemesh extension): the node certificate a node proves
/// its name with, the CAs it trusts to name others, and what it does with peers that prove
/// nothing. Empty paths mean the defaults that exist on the host.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeIdentity {
    /// PEM certificate (chain) naming this node; empty: the first of
    /// [`DEFAULT_NODE_CREDENTIALS`] that exists.
    pub cert_file: String,
    /// PEM private key of `certFile`; empty: `certFile` itself (kubelet keeps both in one file).
    pub key_file: String,
    /// PEM CA certificates trusted to issue node certificates; empty: every one of
    /// [`DEFAULT_NODE_CAS`] that exists.
    #[serde(deserialize_with = "nullable")]
    pub ca_files: Vec<String>,
    pub unattested_peers: Checked<UnattestedPeers>,
}

impl Default for NodeIdentity {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            ca_files: Vec::new(),
            unattested_peers: Checked::new(UnattestedPeers::Auto),
        }
    }
}

/// `modules.edgeTunnel.nodeIdentity.unattestedPeers`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnattestedPeers {
    /// `refuse` when this node's own certificate proves its name (with `psk.mode: noise`),
    /// else `trustOnFirstUse`.
    #[default]
    Auto,
    Refuse,
    TrustOnFirstUse,
}

config_words!(UnattestedPeers {
    Auto => "auto",
    Refuse => "refuse",
    TrustOnFirstUse => "trustOnFirstUse",
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checked::ConfigValue;

    #[test]
    fn unattested_peers_round_trips_and_refuses_other_spellings() {
        for v in [
            UnattestedPeers::Auto,
            UnattestedPeers::Refuse,
            UnattestedPeers::TrustOnFirstUse,
        ] {
            assert_eq!(UnattestedPeers::parse(&v.render()), Some(v));
        }
        assert_eq!(UnattestedPeers::parse("tofu"), None);
    }
}
