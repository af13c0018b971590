//! The node's own key pair: generated once, kept on disk, never derived from the node name.
//!
//! EdgeMesh seeds each node's Ed25519 key from md5(nodeName), so anybody who knows a node's name
//! holds its private key. Here the key is random (from the OS), written once with mode 0600, and
//! read back on every start so the node keeps its peer id across restarts.

use std::io;
use std::path::Path;

use libp2p::identity::Keypair;

use crate::TunnelError;
use crate::fsutil::write_atomic;

/// Loads the key pair at `path`, or generates an Ed25519 one there if the file does not exist.
pub fn load_or_create_keypair(path: &Path) -> Result<Keypair, TunnelError> {
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| TunnelError::KeyDecode {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => create(path),
        Err(source) => Err(TunnelError::KeyRead {
            path: path.to_owned(),
            error: source,
        }),
    }
}

fn create(path: &Path) -> Result<Keypair, TunnelError> {
    let keypair = Keypair::generate_ed25519();
    let bytes = keypair
        .to_protobuf_encoding()
        .map_err(|e| TunnelError::KeyDecode {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    write_atomic(path, &bytes, 0o600)?;
    tracing::info!(path = %path.display(), peer.id = %keypair.public().to_peer_id(), "generated a new node identity key");
    Ok(keypair)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/node.key");
        let first = load_or_create_keypair(&path).unwrap();
        let again = load_or_create_keypair(&path).unwrap();
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn two_nodes_get_different_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_keypair(&dir.path().join("a")).unwrap();
        let b = load_or_create_keypair(&dir.path().join("b")).unwrap();
        assert_ne!(a.public().to_peer_id(), b.public().to_peer_id());
    }

    #[test]
    fn a_corrupt_key_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, b"not a key").unwrap();
        let err = load_or_create_keypair(&path).unwrap_err().to_string();
        assert!(err.contains("bad.key"), "{err}");
    }
}
