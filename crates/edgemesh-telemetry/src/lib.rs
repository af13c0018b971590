//! Logging, the admin endpoint, what `/healthz` watches ([`Liveness`]) and the one metrics
//! path ([`metrics`]); and [`client`], the GET that reads an admin endpoint.
//!
//! The admin server is a tiny HTTP/1.1 server with a fixed route table; each route is a closure
//! the binary provides, so this crate knows nothing about Snapshots or sources.
#![forbid(unsafe_code)]

mod admin;
pub mod client;
pub mod latency;
mod liveness;
mod logging;
pub mod metrics;
mod named;
mod process;
mod readiness;
mod reply;

pub use admin::{AdminServer, Route};
pub use latency::{Latency, LatencySnapshot};
pub use liveness::Liveness;
pub use logging::{LogArgs, LogFormat, init_logging};
pub use metrics::{Kind, Readings, Readout, register_metrics, register_readout};
pub use process::{ProcessMetrics, role_registry, self_status_bytes, status_bytes};
pub use prometheus_client;
pub use prometheus_client::registry::Registry;
pub use readiness::{ReadyChecks, Verdict};
pub use reply::Reply;
