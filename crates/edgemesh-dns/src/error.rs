//! Errors of the DNS server.

use std::net::SocketAddr;

/// Why the DNS server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("clusterDomain '{domain}' is not a valid DNS name: {reason}")]
    InvalidClusterDomain { domain: String, reason: String },
    #[error(
        "DNS listen address {0} is a wildcard: listen on the bridge address (e.g. 169.254.96.16:53) instead"
    )]
    WildcardListen(SocketAddr),
    #[error("no DNS listen address configured")]
    NoListenAddress,
    #[error("cannot bind DNS {protocol} socket on {addr}: {error}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("DNS server stopped: {0}")]
    Server(String),
    #[error("cannot set up the DNS bridge device {name} with {ip}/32: {error}")]
    BridgeDevice {
        name: String,
        ip: std::net::IpAddr,
        error: Box<edgemesh_host::NetError>,
    },
    #[error("cannot listen for DNS on {listen:?}: {error}")]
    Listen {
        listen: Vec<SocketAddr>,
        error: Box<DnsError>,
    },
}
