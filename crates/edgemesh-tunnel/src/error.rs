//! Errors of the tunnel, each naming what was wrong and, where it helps, what to do.

use std::io;
use std::path::PathBuf;

/// Everything that can fail while starting or using the tunnel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    #[error("cannot read PSK file {path}: {source} (set psk.path to EdgeMesh's PSK file)")]
    PskRead { path: PathBuf, source: io::Error },
    #[error("cannot read identity key {path}: {source}")]
    KeyRead { path: PathBuf, source: io::Error },
    #[error(
        "identity key {path} is not a libp2p protobuf-encoded key pair ({reason}); move it away to generate a new one (peers that pinned the old key will refuse the new one until unpinned)"
    )]
    KeyDecode { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("peer pins file {path} is not valid JSON: {source}")]
    PinsDecode {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "cannot use {path} as a CA for node certificates: {reason} (modules.edgeTunnel.nodeIdentity.caFiles)"
    )]
    TrustAnchor { path: PathBuf, reason: String },
    #[error("cannot listen on {addr}: {reason}")]
    ListenAddr { addr: String, reason: String },
    #[error("relay {node}: advertise address '{addr}' is not an IP address")]
    RelayAddr { node: String, addr: String },
    #[error(
        "QUIC needs psk.mode noise: in pnet mode the mesh may hold EdgeMesh Go agents, whose keys derive from their node names"
    )]
    QuicWithPnet,
    #[error("building the libp2p swarm failed: {0}")]
    Swarm(String),
    #[error("node '{0}' is unknown: not in this LAN (mDNS) and no relay knows it")]
    UnknownNode(String),
    #[error("cannot connect to node '{node}' (peer {peer}): {reason}")]
    Connect {
        node: String,
        /// The peer id, as text (a `PeerId` would make every `Result` of this crate large).
        peer: String,
        reason: String,
    },
    #[error("opening a tunnel stream to node '{node}' failed: {reason}")]
    OpenStream { node: String, reason: String },
    #[error("node '{node}' refused to dial {target}: not a ready endpoint on that node")]
    Refused { node: String, target: String },
    #[error("tunnel protocol error with node '{node}': {reason}")]
    Protocol { node: String, reason: String },
    #[error("cannot listen for SOCKS5 clients on {addr}: {source}")]
    Socks5Bind {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error("the tunnel has stopped")]
    Stopped,
}

impl From<TunnelError> for io::Error {
    fn from(error: TunnelError) -> io::Error {
        let kind = match &error {
            TunnelError::Refused { .. } => io::ErrorKind::ConnectionRefused,
            TunnelError::UnknownNode(_) | TunnelError::Connect { .. } => {
                io::ErrorKind::HostUnreachable
            }
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// The innermost cause of `error`: libp2p wraps an OS error (the port is taken) in layers that
/// print nothing or repeat it.
pub(crate) fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}
