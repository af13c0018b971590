//! Errors of the tunnel, each naming what was wrong and, where it helps, what to do. As in every
//! crate of edgemesh, an error's message ends with its cause and does not also expose it as
//! `source()`, so `{e}` in a log line and anyhow's `{e:#}` both print each cause once.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use libp2p::swarm::DialError;

/// Everything that can fail while starting or using the tunnel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    #[error("cannot read PSK file {path} (set psk.path to EdgeMesh's PSK file): {error}")]
    PskRead { path: PathBuf, error: io::Error },
    #[error("cannot read identity key {path}: {error}")]
    KeyRead { path: PathBuf, error: io::Error },
    #[error(
        "identity key {path} is not a libp2p protobuf-encoded key pair ({reason}); move it away to generate a new one (peers that pinned the old key will refuse the new one until unpinned)"
    )]
    KeyDecode { path: PathBuf, reason: String },
    #[error("cannot write {path}: {error}")]
    Write { path: PathBuf, error: io::Error },
    #[error("peer pins file {path} is not valid JSON: {error}")]
    PinsDecode {
        path: PathBuf,
        error: serde_json::Error,
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
        reason: ConnectFailure,
    },
    #[error("opening a tunnel stream to node '{node}' failed: {reason}")]
    OpenStream { node: String, reason: String },
    /// The remote agent answered FAILED: `reason` is its own (our agents send it), or says
    /// that it gave none (EdgeMesh's Go agents).
    #[error("node '{node}' could not dial {target}: {reason}")]
    Refused {
        node: String,
        target: String,
        reason: String,
    },
    #[error(
        "node '{node}' already has {open} tunnel streams open from this node and none ended within {waited:?}"
    )]
    Busy {
        node: String,
        open: usize,
        waited: std::time::Duration,
    },
    /// The open's own work (reaching the peer, opening the stream, the remote dial) took longer
    /// than the caller's connect timeout; time spent waiting for a slot is not counted.
    #[error(
        "opening a tunnel stream to node '{node}' took longer than {within:?} (not counting the wait for a stream slot)"
    )]
    OpenTimedOut {
        node: String,
        within: std::time::Duration,
    },
    #[error("tunnel protocol error with node '{node}': {reason}")]
    Protocol { node: String, reason: String },
    #[error("cannot listen for SOCKS5 clients on {addr}: {error}")]
    Socks5Bind {
        addr: std::net::SocketAddr,
        error: io::Error,
    },
    #[error("the tunnel has stopped")]
    Stopped,
    #[error("cannot create the state directory {} (--state-dir): {error}", path.display())]
    StateDir { path: PathBuf, error: io::Error },
    #[error("cannot start the tunnel (modules.edgeTunnel): {error}")]
    Start { error: Box<TunnelError> },
    #[error("cannot set up {device} with {ip} for SOCKS5: {error}")]
    Socks5Device {
        device: String,
        ip: std::net::IpAddr,
        error: Box<edgemesh_host::NetError>,
    },
    #[error("cannot serve SOCKS5 on {addr}: {error}")]
    Socks5Serve {
        addr: std::net::SocketAddr,
        error: Box<TunnelError>,
    },
}

impl From<TunnelError> for io::Error {
    fn from(error: TunnelError) -> io::Error {
        let kind = match &error {
            TunnelError::Refused { .. } => io::ErrorKind::ConnectionRefused,
            TunnelError::UnknownNode(_) | TunnelError::Connect { .. } => {
                io::ErrorKind::HostUnreachable
            }
            TunnelError::OpenTimedOut { .. } => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// Why the driver could not connect to a peer: the answer to a `Connect` request, and the
/// reason of [`TunnelError::Connect`].
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    #[error("no LAN address and no relay connected")]
    NoPath,
    /// libp2p's dial error, shared by every request that waited on the dial. Its text already
    /// names its causes, so it is the message and not a source.
    #[error("{0}")]
    Dial(Arc<DialError>),
    #[error("timed out")]
    TimedOut,
    #[error(
        "the peer did not prove it is this node (discovery handshake missing or name pinned to another key)"
    )]
    Unproven,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_printed_once() {
        let error = TunnelError::PskRead {
            path: "/no/psk".into(),
            error: io::Error::new(io::ErrorKind::NotFound, "No such file"),
        };
        let message = error.to_string();
        assert_eq!(
            message,
            "cannot read PSK file /no/psk (set psk.path to EdgeMesh's PSK file): No such file"
        );
        assert_eq!(format!("{:#}", anyhow::Error::new(error)), message);
    }

    #[test]
    fn connect_names_its_typed_reason() {
        let error = TunnelError::Connect {
            node: "b1".into(),
            peer: "12D3KooW".into(),
            reason: ConnectFailure::NoPath,
        };
        assert_eq!(
            error.to_string(),
            "cannot connect to node 'b1' (peer 12D3KooW): no LAN address and no relay connected"
        );
    }
}
