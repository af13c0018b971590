//! Errors of the edge hub. Each names what was wrong and, where it helps, what to do.

use std::path::PathBuf;

/// Errors starting or running the hub.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    #[error("invalid hub configuration: {0}")]
    Config(String),
    #[error("cannot read {what} {path}: {error}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid {what} {path}: {reason}")]
    BadFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("cache directory {path}: {error}")]
    Cache {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error(
        "cannot put {ip} on device {name} (needs CAP_NET_ADMIN; or pass --hub-device ''): {error}"
    )]
    Device {
        name: String,
        ip: std::net::IpAddr,
        error: Box<edgemesh_host::NetError>,
    },
}
