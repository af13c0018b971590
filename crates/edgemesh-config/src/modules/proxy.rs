//! `modules.edgeProxy`: the ClusterIP proxy.

use std::net::SocketAddr;

use edgemesh_model::ServiceFilterMode;
use serde::Deserialize;

use crate::checked::{Checked, Port, ProxyBackend};
use crate::nullable;

/// The one transparent proxy port (edgemesh extension; EdgeMesh ≤ 1.9 used the same key).
pub const DEFAULT_PROXY_LISTEN_PORT: u16 = 40001;

/// `modules.edgeProxy.tcpIdleTimeout`: 15 minutes (IPVS's timeout for established TCP).
pub const DEFAULT_TCP_IDLE_TIMEOUT_SECS: i64 = 900;
/// `modules.edgeProxy.udpIdleTimeout`: conntrack's UDP stream timeout.
pub const DEFAULT_UDP_IDLE_TIMEOUT_SECS: i64 = 120;
/// `modules.edgeProxy.maxUdpSessions`.
pub const DEFAULT_MAX_UDP_SESSIONS: i64 = 65_536;

/// `modules.edgeProxy`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EdgeProxy {
    pub enable: bool,
    #[serde(deserialize_with = "nullable")]
    pub socks5_proxy: Socks5Proxy,
    #[serde(deserialize_with = "nullable")]
    pub load_balancer: LoadBalancer,
    pub service_filter_mode: Checked<ServiceFilterMode>,
    /// edgemesh extension: the single transparent proxy port.
    pub listen_port: Checked<Port>,
    /// edgemesh extension: how ClusterIP traffic is intercepted.
    pub backend: Checked<ProxyBackend>,
    /// edgemesh extension: with nftables, TCP services balanced round robin or random over
    /// endpoints of this node are DNATed by the kernel instead of passing through the proxy.
    pub kernel_fast_path: bool,
    /// edgemesh extension: set `net.ipv4.tcp_timestamps` to 2 in the node's network namespace
    /// (timestamps without per-connection random offsets), so a node that reaches a backend both
    /// through a ClusterIP and directly does not stall new connections on the backend's
    /// TIME_WAIT sockets (docs/proxier.md, "New connections and TIME_WAIT").
    pub monotonic_tcp_timestamps: bool,
    /// edgemesh extension: the edge hub's `IP:port` (e.g. `169.254.2.1:10268`); when set, the
    /// `default/kubernetes` Service is sent to the hub instead of the apiserver.
    pub edge_hub_address: Option<Checked<SocketAddr>>,
    /// edgemesh extension: seconds without a byte either way after which a proxied TCP
    /// connection is closed on both sides; 0 never closes it.
    pub tcp_idle_timeout: i64,
    /// edgemesh extension: seconds without a datagram either way after which a UDP flow's
    /// session (its two sockets) is ended.
    pub udp_idle_timeout: i64,
    /// edgemesh extension: most UDP sessions at once; a new flow beyond it ends the least
    /// recently active session and takes its place.
    pub max_udp_sessions: i64,
}

impl Default for EdgeProxy {
    /// EdgeMesh's default: disabled (its shipped ConfigMap enables it).
    fn default() -> Self {
        Self {
            enable: false,
            socks5_proxy: Socks5Proxy::default(),
            load_balancer: LoadBalancer::default(),
            service_filter_mode: Checked::new(ServiceFilterMode::FilterIfLabelExists),
            listen_port: Checked::new(Port(DEFAULT_PROXY_LISTEN_PORT)),
            backend: Checked::new(ProxyBackend::Auto),
            kernel_fast_path: true,
            monotonic_tcp_timestamps: false,
            edge_hub_address: None,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT_SECS,
            udp_idle_timeout: DEFAULT_UDP_IDLE_TIMEOUT_SECS,
            max_udp_sessions: DEFAULT_MAX_UDP_SESSIONS,
        }
    }
}

/// `modules.edgeProxy.socks5Proxy`: reach a node by name through the tunnel (EdgeMesh's SSH
/// guide), on the bridge device's address.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Socks5Proxy {
    pub enable: bool,
    pub listen_port: Checked<Port>,
}

impl Default for Socks5Proxy {
    fn default() -> Self {
        Self {
            enable: false,
            listen_port: Checked::new(Port(10800)),
        }
    }
}

/// `modules.edgeProxy.loadBalancer`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancer {
    #[serde(deserialize_with = "nullable")]
    pub consistent_hash: ConsistentHash,
}

/// `modules.edgeProxy.loadBalancer.consistentHash`: the ring used by DestinationRules with
/// `consistentHash` (consistent hashing with bounded loads).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConsistentHash {
    pub partition_count: i64,
    pub replication_factor: i64,
    /// Bound on a backend's load relative to the average (≥ 1.0).
    pub load: f64,
}

impl Default for ConsistentHash {
    fn default() -> Self {
        Self {
            partition_count: 100,
            replication_factor: 10,
            load: 1.25,
        }
    }
}
