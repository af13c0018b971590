//! The mesh's pre-shared key, read from EdgeMesh's PSK file.
//!
//! EdgeMesh (`pkg/tunnel/util.go`, `GeneratePSKReader`) hashes the whole file with SHA-256,
//! writes the hash as lowercase hex under a `/key/swarm/psk/1.0.0/` + `/base64/` header, and
//! go-libp2p's `DecodeV1PSK` then base64-decodes that hex text and keeps the first 32 bytes.
//! rust-libp2p only parses `/base16/` key files, so the same 32 bytes are derived here: any file
//! that works for EdgeMesh's agents gives the same key, so both can share one private network.

use std::path::Path;

use base64::Engine as _;
use libp2p::pnet::PreSharedKey;
use sha2::{Digest, Sha256};

use crate::TunnelError;

/// Reads `path` and derives the key exactly as EdgeMesh does.
pub fn load_psk(path: &Path) -> Result<PreSharedKey, TunnelError> {
    let data = std::fs::read(path).map_err(|source| TunnelError::PskRead {
        path: path.to_owned(),
        source,
    })?;
    Ok(PreSharedKey::new(psk_bytes(&data)))
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
    fn a_missing_file_names_the_path() {
        let err = load_psk(Path::new("/nonexistent/psk")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/psk"), "{err}");
    }
}
