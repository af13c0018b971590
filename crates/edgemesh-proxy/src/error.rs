//! Errors the proxy reports (start-up problems and per-connection outcomes).

use std::io;
use std::net::SocketAddr;

use edgemesh_model::Frontend;

/// What went wrong; each variant names the address or setting involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("cannot read the original destination of a connection from {peer}: {error}")]
    OriginalDst { peer: SocketAddr, error: io::Error },
    #[error("no service listens at {0:?}")]
    NoRoute(Frontend),
    #[error("service port {0:?} has no endpoint left to try")]
    NoEndpoint(Frontend),
    #[error("every endpoint tried for {frontend:?} failed; last {backend}: {error}")]
    AllDialsFailed {
        frontend: Frontend,
        backend: SocketAddr,
        error: io::Error,
    },
    #[error(
        "connection to {0:?} refused: the node's file descriptors are down to the reserve kept \
         for the admin endpoint, DNS and the sources (see docs/troubleshooting.md)"
    )]
    DescriptorReserve(Frontend),
    #[error("UDP socket set-up failed ({what}): {error}")]
    UdpSetup {
        what: &'static str,
        error: io::Error,
    },
    #[error(
        "cannot listen on the transparent proxy port {addr} (modules.edgeProxy.listenPort; \
         if nothing else listens there, an outgoing connection may hold it as its \
         ephemeral port: see docs/troubleshooting.md): {error}"
    )]
    Listen { addr: SocketAddr, error: io::Error },
}
