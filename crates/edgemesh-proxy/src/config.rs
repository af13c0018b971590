//! Settings of the data path, with the defaults we chose and why.

use std::sync::Arc;
use std::time::Duration;

use edgemesh_host::{HostSockets, Keepalive, SocketFactory};

/// The agent's transparent TCP port (EdgeMesh's default; the netfilter rules REDIRECT here).
pub const DEFAULT_TCP_PORT: u16 = 40001;
/// `SO_MARK` on every upstream socket, so the agent's own traffic is never intercepted again.
/// Same bit as `edgemesh_netfilter::DEFAULT_BYPASS_MARK` (0x1000, unused by kube-proxy,
/// flannel and Calico); the binary must pass the same value to both crates.
pub const DEFAULT_BYPASS_MARK: u32 = 0x1000;

/// Default of [`ProxyConfig::tcp_idle_timeout`] (`modules.edgeProxy.tcpIdleTimeout`).
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(900);
/// Default of [`ProxyConfig::udp_idle_timeout`] (`modules.edgeProxy.udpIdleTimeout`).
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default of [`ProxyConfig::max_udp_sessions`] (`modules.edgeProxy.maxUdpSessions`).
pub const DEFAULT_MAX_UDP_SESSIONS: usize = 65_536;

/// How the proxy behaves; `Default` gives the production values.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Upper bound on one upstream connect attempt.
    pub connect_timeout: Duration,
    /// Endpoints tried per client connection before the client is reset (at least 1).
    pub max_dial_attempts: usize,
    /// Where the UDP path's sockets come from: the receiver, the reply sockets and the
    /// upstreams, which carry its bypass mark. The default marks nothing (no CAP_NET_ADMIN
    /// needed); the agent passes `HostSockets::marked(DEFAULT_BYPASS_MARK)`, and the same
    /// factory to its [`crate::DirectDialer`].
    pub sockets: Arc<dyn SocketFactory>,
    /// A TCP connection with no byte in either direction for this long is closed on both sides.
    /// 15 minutes (IPVS's timeout for established TCP): above the keep-alive of HTTP servers
    /// (5–120 s) and gRPC pings (minutes), yet each idle connection holds descriptors (the
    /// client's, the upstream's, splice's pipes once it streamed), so connections clients left
    /// open do not pile up for an hour and exhaust the fd limit (issue #17: 3,328 idle
    /// connections did). `None` disables it (kube-proxy's behaviour).
    pub tcp_idle_timeout: Option<Duration>,
    /// TCP keepalive on both relayed sockets (the client's and a direct upstream's), so a peer
    /// that vanished without FIN or RST (powered off, NAT mapping lost) is found within
    /// [`Keepalive::dead_after`] instead of the idle timeout, and both sides are closed. `None`:
    /// no probes.
    pub tcp_keepalive: Option<Keepalive>,
    /// Bounds of the HTTP request-head read done only for header-hash policies.
    pub http_head: HttpHeadLimits,
    /// Relay implementation for TCP↔TCP.
    pub relay: RelayMode,
    /// A UDP flow with no datagram in either direction for this long is forgotten
    /// (conntrack's UDP stream timeout is 120 s; DNS-like flows end far sooner).
    pub udp_idle_timeout: Duration,
    /// Most concurrent UDP sessions (each owns two sockets): a new flow that finds this many
    /// evicts the least recently active one (`edgemesh_proxy_udp_sessions_evicted_total`).
    pub max_udp_sessions: usize,
    /// This node's name: with `externalTrafficPolicy: Local`, traffic that arrived by a node
    /// port or an external IP may only use endpoints on it (or without a node name). `None`:
    /// every endpoint counts as local.
    pub local_node: Option<Arc<str>>,
}

/// Bounds of the request-head read for header-hash policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpHeadLimits {
    /// Bytes read while looking for the end of the head; beyond it we hash on the source IP.
    pub max_bytes: usize,
    /// Time allowed for the head to arrive; beyond it we hash on the source IP.
    pub timeout: Duration,
}

/// How bytes move between the client and a TCP upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMode {
    /// The user-space copy while the traffic is messages, `splice(2)` once a direction streams
    /// (edgemesh-copy's `adaptive_both_ways`): request/response traffic as fast as the copy
    /// (+7–9 % round trips/s over splice), bulk as fast as splice.
    Adaptive,
    /// `splice(2)` through a pipe: no copy into user space (the fastest for bulk, see benches/).
    Splice,
    /// A user-space copy whose buffer per direction grows with traffic up to this many bytes
    /// (and is released while the direction is idle).
    Copy { buffer: usize },
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            max_dial_attempts: 3,
            sockets: Arc::new(HostSockets::default()),
            tcp_idle_timeout: Some(DEFAULT_TCP_IDLE_TIMEOUT),
            tcp_keepalive: Some(Keepalive::RELAYED),
            http_head: HttpHeadLimits::default(),
            relay: RelayMode::Adaptive,
            udp_idle_timeout: DEFAULT_UDP_IDLE_TIMEOUT,
            max_udp_sessions: DEFAULT_MAX_UDP_SESSIONS,
            local_node: None,
        }
    }
}

impl Default for HttpHeadLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024,
            timeout: Duration::from_secs(2),
        }
    }
}
