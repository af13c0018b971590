//! The edge hub: a kube-apiserver proxy for edge nodes that caches the responses of chosen
//! clients (by User-Agent) on disk and serves them while the cloud is unreachable.
//!
//! Entry point: [`Hub::start`] with a [`HubConfig`], then [`RunningHub::serve`]; [`cli`] holds
//! `edgemesh hub`'s flags, [`role`] runs it (the link-local device, the admin routes). The decision
//! logic is in pure modules ([`request`], [`health`], [`agents`]; label selectors come from the
//! `edgemesh-selector` crate); the cache is [`store::Cache`]. One request's path: `server.rs`
//! (listeners) → `proxy.rs` (route) → `passthrough.rs` (online) or `offline.rs` (from the cache),
//! with `watch.rs` for watches and `prober.rs` deciding whether the cloud is there. See
//! `docs/edge-hub.md` for the cache layout, offline rules and security model.
#![forbid(unsafe_code)]

pub mod agents;
mod answer;
mod attempt;
pub mod bootstrap;
pub mod cli;
mod client;
pub mod config;
mod configmap;
mod creds;
pub mod error;
pub mod health;
mod hub;
mod metrics;
mod offline;
mod passthrough;
mod prober;
mod proxy;
pub mod request;
mod response;
pub mod role;
mod server;
mod state;
mod status;
pub mod store;
mod tls;
pub mod upstream;
mod watch;

pub use config::HubConfig;
pub use edgemesh_selector::SelectorError;
pub use error::HubError;
pub use health::HealthConfig;
pub use hub::{Hub, HubStatus, RunningHub, StatusHandle, UpstreamStatus};
