//! `modules`: the agent's modules (EdgeMesh names them edgeDNS, edgeProxy, edgeTunnel, edgeCNI).

mod cni;
mod dns;
mod proxy;
mod tunnel;

use serde::Deserialize;

pub use cni::{EdgeCni, MeshCidrConfig};
pub use dns::{CacheDns, DEFAULT_CLUSTER_DOMAIN, EdgeDns};
pub use proxy::{ConsistentHash, DEFAULT_PROXY_LISTEN_PORT, EdgeProxy, LoadBalancer, Socks5Proxy};
pub use tunnel::{
    DEFAULT_NODE_CAS, DEFAULT_NODE_CREDENTIALS, EdgeTunnel, MetricConfig, NodeIdentity, Psk,
    RelayNode, TunnelLimitConfig, UnattestedPeers,
};

use crate::nullable;

/// `modules`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentModules {
    #[serde(rename = "edgeDNS", deserialize_with = "nullable")]
    pub edge_dns: EdgeDns,
    #[serde(deserialize_with = "nullable")]
    pub edge_proxy: EdgeProxy,
    #[serde(deserialize_with = "nullable")]
    pub edge_tunnel: EdgeTunnel,
    #[serde(rename = "edgeCNI", deserialize_with = "nullable")]
    pub edge_cni: EdgeCni,
}
