//! Credential binding: the hash of what a client presented (its `Authorization` header), so a
//! cached response is served offline only to a client the apiserver accepted while online.

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

/// The hub's own bearer token (`--token-file`), read at each use: kubelet rotates projected
/// service-account tokens in place.
#[derive(Debug, Clone, Default)]
pub struct OwnToken {
    file: Option<PathBuf>,
}

impl OwnToken {
    pub fn new(file: Option<&Path>) -> Self {
        Self {
            file: file.map(Path::to_path_buf),
        }
    }

    /// `Bearer <token>`, or `None` without a token file (a read failure is logged).
    pub fn header(&self) -> Option<HeaderValue> {
        let file = self.file.as_deref()?;
        let token = std::fs::read_to_string(file)
            .map_err(
                |e| tracing::warn!(file = %file.display(), error = %e, "cannot read --token-file"),
            )
            .ok()?;
        HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(
                |_| tracing::warn!(file = %file.display(), "--token-file is not a valid token"),
            )
            .ok()
    }
}

/// Hex SHA-256 of the client's credentials; anonymous clients hash the empty string. The token
/// itself is never stored.
pub fn credential_hash(headers: &HeaderMap) -> String {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or(b"");
    let digest = Sha256::digest(presented);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the client presented credentials at all.
pub fn has_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_tokens_hash_differently() {
        let mut a = HeaderMap::new();
        a.insert(http::header::AUTHORIZATION, "Bearer a".parse().unwrap());
        let mut b = HeaderMap::new();
        b.insert(http::header::AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_ne!(credential_hash(&a), credential_hash(&b));
        assert_eq!(credential_hash(&a).len(), 64);
        assert!(!credential_hash(&a).contains("Bearer"));
        assert!(!has_credentials(&HeaderMap::new()));
    }
}
