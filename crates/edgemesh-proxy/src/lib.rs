//! The userspace data path of edgemesh.
//!
//! TCP: one transparent listener (REDIRECT + `SO_ORIGINAL_DST`) serves every service. Each
//! connection reads top to bottom in [`Proxy`]: accept → original destination → route (a
//! lock-free [`edgemesh_model::SnapshotCell`] lookup) → balance ([`edgemesh_lb::Balancer`]) →
//! dial ([`Dialer`], retrying other endpoints) → relay (`edgemesh-copy`: `splice(2)` for TCP↔TCP). A port whose
//! service hashes on an HTTP header gets its request head read first (bounded).
//!
//! UDP: one `IP_TRANSPARENT` socket receives TPROXY'd datagrams for every UDP service; see
//! [`udp`] for the sessions and the kernel set-up it expects.
//!
//! [`listeners`] binds both as the agent starts them: before any rule points at them, serving
//! once the sources are synced.
//!
//! Sockets come from the host seam (`edgemesh_host::SocketFactory`), which sets the bypass mark,
//! `TCP_NODELAY` and `IP_TRANSPARENT`. No `unsafe` here: the syscalls (`recvmsg` with
//! `IP_RECVORIGDSTADDR`) go through nix and socket2.
#![forbid(unsafe_code)]

pub mod classify;
pub mod config;
pub mod connect;
pub mod dialer;
mod error;
pub mod http_head;
pub mod listeners;
pub mod metrics;
pub mod origdst;
mod proxy;
pub mod relay;
pub mod service_metrics;
pub mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod udp;

pub use config::{
    DEFAULT_BYPASS_MARK, DEFAULT_MAX_UDP_SESSIONS, DEFAULT_TCP_IDLE_TIMEOUT, DEFAULT_TCP_PORT,
    DEFAULT_UDP_IDLE_TIMEOUT, HttpHeadLimits, ProxyConfig, RelayMode,
};
pub use dialer::{DatagramChannel, DatagramDial, Dialer, DirectDialer, Upstream, UpstreamIo};
pub use error::ProxyError;
pub use metrics::{Metrics, MetricsSnapshot, UdpDrop};
pub use origdst::{OriginalDst, SoOriginalDst};
pub use proxy::Proxy;
pub use service_metrics::{ServiceCounters, ServiceMetrics};
