//! Logging and the admin endpoint.
//!
//! The admin server is a tiny HTTP/1.1 server with a fixed route table; each route is a closure
//! the binary provides, so this crate knows nothing about Snapshots or sources.
#![forbid(unsafe_code)]

mod admin;
mod logging;

pub use admin::{AdminServer, Reply, Route};
pub use logging::{LogFormat, init_logging};
pub use prometheus_client;
