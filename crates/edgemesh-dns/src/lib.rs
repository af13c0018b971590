//! Node-local DNS of edgemesh.
//!
//! Cluster names (`svc.ns.svc.<domain>`, headless endpoints, SRV, PTR, ExternalName) are answered
//! by a pure function of the current [`Snapshot`](edgemesh_model::Snapshot), read lock-free per
//! query, so answers follow the Snapshot immediately. Every other name is forwarded to upstream
//! servers through a cache that serves stale answers when the upstreams are gone (an offline edge
//! keeps resolving what it resolved before). The handler is a hickory `RequestHandler`; hickory's
//! `Server` runs the sockets, bound only to the configured addresses.
//!
//! Entry points for the agent: [`DnsSettings::from_config`] (EdgeMesh's `modules.edgeDNS`) and
//! [`settings::start`] (the bridge device from `edgemesh_host::ensure_bridge_device`, then
//! [`DnsServer::bind`] + [`DnsServer::run`]); underneath, [`DnsConfig`], [`upstreams_of_node`],
//! [`serve`] and [`DnsMetrics`].
#![forbid(unsafe_code)]

pub mod cache;
pub mod clients;
pub mod config;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod names;
pub mod packet;
pub mod reply;
pub mod resolve;
pub mod reverse;
pub mod server;
pub mod settings;
pub mod upstream;
pub mod zone;

pub use config::{
    ClientPolicy, DEFAULT_BRIDGE_DEVICE, DEFAULT_BRIDGE_IP, DEFAULT_LISTEN_PORT, DnsConfig,
    RESOLV_CONF, upstreams_from_resolv_conf, upstreams_of_node,
};
pub use error::DnsError;
pub use handler::DnsHandler;
/// Re-exported so callers of [`handle_packet`] need no direct hickory dependency.
pub use hickory_server::net::xfer::Protocol;
pub use metrics::{DnsMetrics, DnsMetricsSnapshot};
pub use packet::handle_packet;
pub use resolve::Resolver;
pub use server::{DnsServer, serve};
pub use settings::DnsSettings;
