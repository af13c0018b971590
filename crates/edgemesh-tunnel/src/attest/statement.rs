//! The bytes a node signs: a label (so the signature means nothing in any other protocol), then
//! each field length-prefixed so that no two statements share an encoding.

use std::time::{Duration, SystemTime};

use libp2p::PeerId;

const LABEL: &[u8] = b"edgemesh tunnel node attestation v1\0";

/// The statement "peer `peer` is node `node`, said at `timestamp_ms`, to the verifier that sent
/// `nonce`, signed with `scheme`".
pub(super) fn statement(
    node: &str,
    peer: &PeerId,
    timestamp_ms: u64,
    nonce: &[u8],
    scheme: u16,
) -> Vec<u8> {
    let peer = peer.to_bytes();
    let mut out = Vec::with_capacity(LABEL.len() + node.len() + peer.len() + nonce.len() + 32);
    out.extend_from_slice(LABEL);
    for field in [node.as_bytes(), &peer, nonce] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field);
    }
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&scheme.to_be_bytes());
    out
}

/// Milliseconds since the Unix epoch (0 for a clock before it).
pub(super) fn unix_millis(t: SystemTime) -> u64 {
    let since = t.duration_since(SystemTime::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `ms` milliseconds after the epoch.
pub(super) fn from_unix_millis(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cannot_slide_into_each_other() {
        let peer = PeerId::random();
        let a = statement("ab", &peer, 1, b"c", 0x0403);
        let b = statement("a", &peer, 1, b"bc", 0x0403);
        assert_ne!(a, b);
        assert_ne!(a, statement("ab", &peer, 2, b"c", 0x0403));
        assert_ne!(a, statement("ab", &PeerId::random(), 1, b"c", 0x0403));
    }
}
