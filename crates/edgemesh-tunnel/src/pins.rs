//! Node name ↔ peer id binding: the first key seen for a node name is pinned (kept on disk), and
//! a later peer claiming the same name with another key is refused.
//!
//! The name a peer claims comes from the discovery handshake on an authenticated (noise)
//! connection, so a pin binds a name to a key the peer proved it holds. Trust on first use: a
//! member that claims a name before its real owner ever connected wins the pin; operators can
//! pre-seed pins (the same JSON file) or remove a stale one after re-installing a node.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libp2p::PeerId;

use crate::TunnelError;
use crate::fsutil::write_atomic;

/// What checking a claim decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinVerdict {
    /// The name was already bound to this peer.
    Known,
    /// First time this name is seen: it is now bound to this peer.
    Pinned,
    /// The name is bound to another peer: refuse.
    Conflict(PeerId),
}

/// The pin table, optionally persisted as JSON `{ "node-name": "peer id", ... }`.
#[derive(Debug, Default)]
pub struct PeerPins {
    pins: BTreeMap<String, PeerId>,
    path: Option<PathBuf>,
}

impl PeerPins {
    /// An in-memory table (tests, or when no path is configured).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the table from `path` (missing file: empty table).
    pub fn load(path: &Path) -> Result<Self, TunnelError> {
        let pins = match std::fs::read(path) {
            Ok(bytes) => decode(path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(TunnelError::KeyRead {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Self {
            pins,
            path: Some(path.to_owned()),
        })
    }

    /// The peer bound to `node`, if any.
    pub fn get(&self, node: &str) -> Option<PeerId> {
        self.pins.get(node).copied()
    }

    /// The node name bound to `peer`, if any.
    pub fn name_of(&self, peer: &PeerId) -> Option<&str> {
        self.pins
            .iter()
            .find(|(_, p)| *p == peer)
            .map(|(n, _)| n.as_str())
    }

    /// Checks that `peer` may use the name `node`, pinning it on first sight (and saving).
    pub fn check(&mut self, node: &str, peer: PeerId) -> Result<PinVerdict, TunnelError> {
        let verdict = decide(self.get(node), peer);
        if verdict == PinVerdict::Pinned {
            self.pins.insert(node.to_owned(), peer);
            self.save()?;
        }
        Ok(verdict)
    }

    fn save(&self) -> Result<(), TunnelError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text: BTreeMap<&str, String> = self
            .pins
            .iter()
            .map(|(n, p)| (n.as_str(), p.to_string()))
            .collect();
        let json = serde_json::to_vec_pretty(&text).map_err(|e| TunnelError::PinsDecode {
            path: path.clone(),
            source: e,
        })?;
        write_atomic(path, &json, 0o600)
    }
}

/// The pure decision: the pinned peer (if any) against the claiming one.
pub fn decide(pinned: Option<PeerId>, claimant: PeerId) -> PinVerdict {
    match pinned {
        None => PinVerdict::Pinned,
        Some(p) if p == claimant => PinVerdict::Known,
        Some(p) => PinVerdict::Conflict(p),
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, PeerId>, TunnelError> {
    let raw: BTreeMap<String, String> =
        serde_json::from_slice(bytes).map_err(|source| TunnelError::PinsDecode {
            path: path.to_owned(),
            source,
        })?;
    let mut pins = BTreeMap::new();
    for (node, peer) in raw {
        match peer.parse::<PeerId>() {
            Ok(peer) => {
                pins.insert(node, peer);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), %node, %peer, error = %e, "ignoring a pin whose peer id does not parse")
            }
        }
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let cases = [
            (None, a, PinVerdict::Pinned),
            (Some(a), a, PinVerdict::Known),
            (Some(a), b, PinVerdict::Conflict(a)),
        ];
        for (pinned, claimant, want) in cases {
            assert_eq!(decide(pinned, claimant), want);
        }
    }

    #[test]
    fn pins_survive_a_restart_and_refuse_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.json");
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut pins = PeerPins::load(&path).unwrap();
        assert_eq!(pins.check("edge-1", a).unwrap(), PinVerdict::Pinned);
        let mut reloaded = PeerPins::load(&path).unwrap();
        assert_eq!(reloaded.check("edge-1", a).unwrap(), PinVerdict::Known);
        assert_eq!(
            reloaded.check("edge-1", b).unwrap(),
            PinVerdict::Conflict(a)
        );
        assert_eq!(reloaded.name_of(&a), Some("edge-1"));
    }

    #[test]
    fn a_corrupt_pins_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.json");
        std::fs::write(&path, b"{not json").unwrap();
        let err = PeerPins::load(&path).unwrap_err().to_string();
        assert!(err.contains("pins.json"), "{err}");
    }
}
