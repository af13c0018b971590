//! The mesh's pre-shared key, read from EdgeMesh's PSK file, and how it keeps non-members out.
//!
//! EdgeMesh (`pkg/tunnel/util.go`, `GeneratePSKReader`) hashes the whole file with SHA-256,
//! writes the hash as lowercase hex under a `/key/swarm/psk/1.0.0/` + `/base64/` header, and
//! go-libp2p's `DecodeV1PSK` then base64-decodes that hex text and keeps the first 32 bytes.
//! rust-libp2p only parses `/base16/` key files, so the same 32 bytes are derived here: any file
//! that works for EdgeMesh's agents gives the same key, so both can share one private network.
//!
//! Two ways to apply the key ([`PskMode`]): go-libp2p's private network (pnet: XSalsa20 over the
//! whole connection, under noise), which EdgeMesh's Go agents speak; or, by default, as the noise
//! handshake's prologue. A noise handshake only completes when both sides hold the same
//! prologue, so a node without the key is refused just as with pnet, and every byte is encrypted
//! once instead of twice (pnet's scalar XSalsa20 was 42 % of a sending node's CPU).

use std::path::Path;

use base64::Engine as _;
use libp2p::identity::Keypair;
use libp2p::noise;
use libp2p::pnet::PreSharedKey;
use sha2::{Digest, Sha256};

use crate::TunnelError;

/// How the PSK keeps non-members out (`modules.edgeTunnel.psk.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PskMode {
    /// Bound into the noise handshake: one cipher on the data. Only edgemesh agents speak it.
    #[default]
    Noise,
    /// go-libp2p's private network, as EdgeMesh's Go agents speak it: needed while any are left
    /// in the mesh.
    Pnet,
}

/// What the transport does with the mesh's key.
#[derive(Clone)]
pub(crate) enum Membership {
    /// No key: anybody who can reach the port may connect (tests, trusted networks).
    Open,
    Pnet(PreSharedKey),
    /// The prologue every member's noise handshakes carry.
    NoisePrologue(Vec<u8>),
}

impl Membership {
    /// Reads the PSK file at `path` (none: [`Membership::Open`]) for `mode`.
    pub(crate) fn load(path: Option<&Path>, mode: PskMode) -> Result<Self, TunnelError> {
        let Some(path) = path else {
            return Ok(Membership::Open);
        };
        let key = read_psk_file(path)?;
        Ok(match mode {
            PskMode::Pnet => Membership::Pnet(PreSharedKey::new(key)),
            PskMode::Noise => Membership::NoisePrologue(noise_prologue(&key)),
        })
    }

    /// The pnet key, in [`PskMode::Pnet`].
    pub(crate) fn pnet(&self) -> Option<PreSharedKey> {
        match self {
            Membership::Pnet(key) => Some(*key),
            _ => None,
        }
    }

    /// Noise for `key`'s identity, carrying the prologue in [`PskMode::Noise`].
    pub(crate) fn noise(&self, key: &Keypair) -> Result<noise::Config, noise::Error> {
        let config = noise::Config::new(key)?;
        Ok(match self {
            Membership::NoisePrologue(prologue) => config.with_prologue(prologue.clone()),
            _ => config,
        })
    }
}

/// Reads `path` and derives the key exactly as EdgeMesh does.
pub fn read_psk_file(path: &Path) -> Result<[u8; 32], TunnelError> {
    let data = std::fs::read(path).map_err(|source| TunnelError::PskRead {
        path: path.to_owned(),
        error: source,
    })?;
    Ok(psk_bytes(&data))
}

/// The prologue for `key`: hashed with a label, so that it never equals the pnet key itself.
fn noise_prologue(key: &[u8; 32]) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(b"edgemesh-tunnel psk prologue v1\0");
    hash.update(key);
    hash.finalize().to_vec()
}

/// The 32 key bytes for a PSK file's content.
pub fn psk_bytes(file: &[u8]) -> [u8; 32] {
    let hex: String = Sha256::digest(file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // 64 hex characters are 64 valid base64 characters: they decode to 48 bytes, never an error.
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(hex.as_bytes())
        .unwrap_or_default();
    let mut key = [0u8; 32];
    for (dst, src) in key.iter_mut().zip(decoded) {
        *dst = src;
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Expected keys computed independently, as go-libp2p would read EdgeMesh's key reader
    /// (Python: `base64.b64decode(sha256(x).hexdigest())[:32]`).
    #[test]
    fn derives_the_same_key_as_edgemesh() {
        let cases: [(&[u8], &str); 2] = [
            (
                b"",
                "7b76f4738e36f7c7dcd5cd78f5a7db7f873cf7de9f6fddb8dbb69ee357b8eb8f",
            ),
            (
                b"secret\n",
                "6f7edee7471e75c7777b77f57dfeb87f869f734e36db4f3869eebde36e7771fd",
            ),
        ];
        for (file, want) in cases {
            assert_eq!(hex(&psk_bytes(file)), want, "{file:?}");
        }
    }

    #[test]
    fn the_prologue_depends_on_the_key_and_is_not_the_key() {
        let (a, b) = (psk_bytes(b"one"), psk_bytes(b"two"));
        assert_ne!(noise_prologue(&a), noise_prologue(&b));
        assert_ne!(noise_prologue(&a), a.to_vec());
        assert_eq!(noise_prologue(&a), noise_prologue(&psk_bytes(b"one")));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = read_psk_file(Path::new("/nonexistent/psk")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/psk"), "{err}");
    }
}
