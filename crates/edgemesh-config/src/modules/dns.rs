//! `modules.edgeDNS`: node-local DNS for cluster names.

use serde::Deserialize;

use crate::checked::{Checked, Port};
use crate::nullable;

/// Default cluster domain (edgemesh extension `modules.edgeDNS.clusterDomain`).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// `modules.edgeDNS`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EdgeDns {
    /// EdgeMesh enables it by default on edge nodes and disables it on cloud nodes.
    pub enable: bool,
    pub listen_port: Checked<Port>,
    #[serde(rename = "cacheDNS", deserialize_with = "nullable")]
    pub cache_dns: CacheDns,
    /// edgemesh extension: the cluster's DNS domain.
    pub cluster_domain: String,
    /// edgemesh extension: TTL in seconds of answers for cluster names.
    pub ttl: i64,
    /// edgemesh extension: when set, only this node, its pods (its Node's `podCIDRs`) and these
    /// networks (`10.0.0.0/8`) are answered; when empty, everyone but the node's own LAN.
    #[serde(deserialize_with = "nullable")]
    pub allowed_clients: Vec<String>,
}

impl Default for EdgeDns {
    /// EdgeMesh's defaults on an edge node (enabled).
    fn default() -> Self {
        Self {
            enable: true,
            listen_port: Checked::new(Port(53)),
            cache_dns: CacheDns::default(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
            ttl: 30,
            allowed_clients: Vec::new(),
        }
    }
}

/// `modules.edgeDNS.cacheDNS`: forwarding of other names to upstream servers, with a cache.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CacheDns {
    pub enable: bool,
    /// Detect the upstream cluster DNS (kube-dns Service) automatically.
    pub auto_detect: bool,
    /// `IP` or `IP:port` entries (port 53 when omitted).
    #[serde(deserialize_with = "nullable")]
    pub upstream_servers: Vec<String>,
    /// Seconds.
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: i64,
}

impl Default for CacheDns {
    fn default() -> Self {
        Self {
            enable: false,
            auto_detect: true,
            upstream_servers: Vec::new(),
            cache_ttl: 30,
        }
    }
}
