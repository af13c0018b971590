//! Node name ↔ peer id bindings, kept on disk: attested by the node's certificate, or pinned on
//! first use (TOFU) where no attestation exists.
//!
//! The name a peer claims comes from the discovery handshake on an authenticated (noise)
//! connection, so a binding ties a name to a key the peer proved it holds. An attested binding
//! (the peer proved the name with its node certificate, [`crate::attest`]) replaces any earlier
//! binding of that name — a node restarted with a new key is accepted at once — and from then on
//! an unattested claim of that name by another key is refused. A TOFU pin is made only for a
//! name never attested, and only when the policy allows unattested peers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::TunnelError;
#[cfg(test)]
use crate::fsutil::write_atomic;

/// A name's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub peer: PeerId,
    /// Proved with a node certificate (else pinned on first use).
    pub attested: bool,
}

/// What the claimant proved (a false attestation never gets here: it is refused before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Attested,
    Unattested,
}

/// What this node does with unattested claims (resolved from `unattestedPeers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Refuse,
    TrustOnFirstUse,
}

/// What checking a claim decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinVerdict {
    /// The name was already bound to this peer.
    Known,
    /// First time this name is seen: it is now pinned to this peer (unattested).
    Pinned,
    /// The peer attested the name: it is now bound to it, replacing `replaced` if any.
    Attested { replaced: Option<PeerId> },
    /// The name is bound to another peer: refuse.
    Conflict(Binding),
    /// The policy refuses claims without attestation.
    Unattested,
}

/// The binding table, optionally persisted as JSON: `{"node": "peer id"}` for a TOFU pin (the
/// format of earlier versions), `{"node": {"peer": "peer id", "attested": true}}` for an
/// attested binding.
#[derive(Debug, Default)]
pub struct PeerPins {
    pins: BTreeMap<String, Binding>,
    path: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Pinned(String),
    Bound {
        peer: String,
        #[serde(default)]
        attested: bool,
    },
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
                    error: source,
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
        self.pins.get(node).map(|b| b.peer)
    }

    /// The node name bound to `peer`, if any.
    pub fn name_of(&self, peer: &PeerId) -> Option<&str> {
        self.pins
            .iter()
            .find(|(_, b)| b.peer == *peer)
            .map(|(n, _)| n.as_str())
    }

    /// Checks `peer`'s `claim` of the name `node`, recording a new binding in memory; a verdict
    /// that made one ([`PinVerdict::changes_pins`]) wants the table saved ([`PeerPins::encoded`]).
    pub fn check(&mut self, node: &str, peer: PeerId, claim: Claim, policy: Policy) -> PinVerdict {
        let verdict = decide(self.pins.get(node).copied(), peer, claim, policy);
        let attested = match verdict {
            PinVerdict::Pinned => false,
            PinVerdict::Attested { .. } => true,
            _ => return verdict,
        };
        self.pins
            .insert(node.to_owned(), Binding { peer, attested });
        verdict
    }

    /// Where the table is kept and its JSON, to be written with `fsutil::write_atomic` (away
    /// from whatever lock holds the table: the write syncs the disk twice); `None` in memory.
    pub fn encoded(&self) -> Result<Option<(PathBuf, Vec<u8>)>, TunnelError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let text: BTreeMap<&str, Stored> = self
            .pins
            .iter()
            .map(|(n, b)| (n.as_str(), stored(b)))
            .collect();
        let json = serde_json::to_vec_pretty(&text).map_err(|e| TunnelError::PinsDecode {
            path: path.clone(),
            error: e,
        })?;
        Ok(Some((path.clone(), json)))
    }

    /// Writes the table where it is kept (tests; the tunnel writes it off its locks:
    /// `Shared::save_pins`).
    #[cfg(test)]
    fn save(&self) -> Result<(), TunnelError> {
        match self.encoded()? {
            Some((path, json)) => write_atomic(&path, &json, 0o600),
            None => Ok(()),
        }
    }
}

impl PinVerdict {
    /// Whether the verdict recorded a binding that the table on disk does not have yet.
    pub fn changes_pins(&self) -> bool {
        matches!(self, PinVerdict::Pinned | PinVerdict::Attested { .. })
    }
}

fn stored(b: &Binding) -> Stored {
    match b.attested {
        false => Stored::Pinned(b.peer.to_string()),
        true => Stored::Bound {
            peer: b.peer.to_string(),
            attested: true,
        },
    }
}

/// The pure decision: the name's current binding (if any) against the claimant.
pub fn decide(
    current: Option<Binding>,
    claimant: PeerId,
    claim: Claim,
    policy: Policy,
) -> PinVerdict {
    match (claim, current) {
        (Claim::Attested, Some(b)) if b.peer == claimant && b.attested => PinVerdict::Known,
        (Claim::Attested, Some(b)) if b.peer != claimant => PinVerdict::Attested {
            replaced: Some(b.peer),
        },
        (Claim::Attested, _) => PinVerdict::Attested { replaced: None },
        // The key was bound before (attested, or pinned while that was allowed).
        (Claim::Unattested, Some(b))
            if b.peer == claimant && (b.attested || policy == Policy::TrustOnFirstUse) =>
        {
            PinVerdict::Known
        }
        (Claim::Unattested, Some(b)) if b.peer != claimant => PinVerdict::Conflict(b),
        (Claim::Unattested, _) if policy == Policy::Refuse => PinVerdict::Unattested,
        (Claim::Unattested, _) => PinVerdict::Pinned,
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Binding>, TunnelError> {
    let raw: BTreeMap<String, Stored> =
        serde_json::from_slice(bytes).map_err(|source| TunnelError::PinsDecode {
            path: path.to_owned(),
            error: source,
        })?;
    let mut pins = BTreeMap::new();
    for (node, entry) in raw {
        let (peer, attested) = match entry {
            Stored::Pinned(peer) => (peer, false),
            Stored::Bound { peer, attested } => (peer, attested),
        };
        match peer.parse::<PeerId>() {
            Ok(peer) => {
                pins.insert(node, Binding { peer, attested });
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), %node, peer.id = %peer, error = %e, "ignoring a pin whose peer id does not parse")
            }
        }
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Claim::{Attested, Unattested};
    use Policy::{Refuse, TrustOnFirstUse as Tofu};

    #[test]
    fn decisions() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let pin = |peer| {
            Some(Binding {
                peer,
                attested: false,
            })
        };
        let att = |peer| {
            Some(Binding {
                peer,
                attested: true,
            })
        };
        let cases = [
            // TOFU where nothing is attested, as before.
            (None, a, Unattested, Tofu, PinVerdict::Pinned),
            (pin(a), a, Unattested, Tofu, PinVerdict::Known),
            (
                pin(a),
                b,
                Unattested,
                Tofu,
                PinVerdict::Conflict(Binding {
                    peer: a,
                    attested: false,
                }),
            ),
            // An attestation replaces any binding: a restarted node with a new key, or a name
            // an impostor was pinned to.
            (
                None,
                a,
                Attested,
                Tofu,
                PinVerdict::Attested { replaced: None },
            ),
            (
                pin(a),
                b,
                Attested,
                Tofu,
                PinVerdict::Attested { replaced: Some(a) },
            ),
            (
                att(a),
                b,
                Attested,
                Refuse,
                PinVerdict::Attested { replaced: Some(a) },
            ),
            (
                pin(a),
                a,
                Attested,
                Refuse,
                PinVerdict::Attested { replaced: None },
            ),
            (att(a), a, Attested, Refuse, PinVerdict::Known),
            // Unattested claims of an attested name by another key: refused under any policy.
            (
                att(a),
                b,
                Unattested,
                Tofu,
                PinVerdict::Conflict(Binding {
                    peer: a,
                    attested: true,
                }),
            ),
            (att(a), a, Unattested, Refuse, PinVerdict::Known),
            // Policy refuse: no TOFU, and old TOFU pins no longer admit.
            (None, a, Unattested, Refuse, PinVerdict::Unattested),
            (pin(a), a, Unattested, Refuse, PinVerdict::Unattested),
        ];
        for (i, (current, claimant, claim, policy, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(current, claimant, claim, policy), want, "case {i}");
        }
    }

    #[test]
    fn bindings_survive_a_restart_and_refuse_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.json");
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut pins = PeerPins::load(&path).unwrap();
        assert_eq!(
            pins.check("edge-1", a, Unattested, Tofu),
            PinVerdict::Pinned
        );
        assert_eq!(
            pins.check("edge-2", b, Attested, Tofu),
            PinVerdict::Attested { replaced: None }
        );
        pins.save().unwrap();
        let mut reloaded = PeerPins::load(&path).unwrap();
        assert_eq!(
            reloaded.check("edge-1", a, Unattested, Tofu),
            PinVerdict::Known
        );
        assert!(matches!(
            reloaded.check("edge-1", c, Unattested, Tofu),
            PinVerdict::Conflict(_)
        ));
        assert!(matches!(
            reloaded.check("edge-2", c, Unattested, Tofu),
            PinVerdict::Conflict(Binding { attested: true, .. })
        ));
        assert_eq!(reloaded.name_of(&a), Some("edge-1"));
    }

    #[test]
    fn the_old_pins_format_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.json");
        let peer = PeerId::random();
        std::fs::write(&path, format!(r#"{{"edge-1": "{peer}"}}"#)).unwrap();
        let pins = PeerPins::load(&path).unwrap();
        assert_eq!(pins.get("edge-1"), Some(peer));
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
