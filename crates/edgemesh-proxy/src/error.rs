//! Errors the proxy reports (start-up problems and per-connection outcomes).

use std::io;
use std::net::SocketAddr;

use edgemesh_model::Frontend;

/// What went wrong; each variant names the address or setting involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error(
        "setting SO_MARK {mark:#x} on upstream sockets is not permitted ({source}); run with \
         CAP_NET_ADMIN or set the mark to 0 (then the netfilter rules cannot exempt the agent's \
         own connections)"
    )]
    MarkNotPermitted { mark: u32, source: io::Error },
    #[error("cannot read the original destination of a connection from {peer}: {source}")]
    OriginalDst { peer: SocketAddr, source: io::Error },
    #[error("no service listens at {0:?}")]
    NoRoute(Frontend),
    #[error("service port {0:?} has no endpoint left to try")]
    NoEndpoint(Frontend),
    #[error("every endpoint tried for {frontend:?} failed; last {backend}: {source}")]
    AllDialsFailed {
        frontend: Frontend,
        backend: SocketAddr,
        source: io::Error,
    },
    #[error("UDP socket set-up failed ({what}): {source}")]
    UdpSetup {
        what: &'static str,
        source: io::Error,
    },
}
