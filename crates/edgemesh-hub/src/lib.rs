//! The edge hub: a kube-apiserver proxy for edge nodes that caches the responses of chosen
//! clients (by User-Agent) on disk and serves them while the cloud is unreachable.
//!
//! Entry point: [`Hub::start`] with a [`HubConfig`], then [`RunningHub::serve`]. The decision
//! logic is in pure modules ([`request`], [`selector`], [`health`], [`agents`]); the cache is
//! [`store::Cache`].
#![forbid(unsafe_code)]

pub mod agents;
pub mod error;
pub mod request;
pub mod selector;
pub mod store;

pub use error::{HubError, SelectorError};
