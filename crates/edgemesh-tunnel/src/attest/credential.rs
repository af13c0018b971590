//! This node's credential: its certificate chain and private key (PEM files, as kubelet and
//! edgecore keep them), and signing an attestation with it.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use libp2p::PeerId;
use rustls::SignatureScheme;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;

use super::message::Attestation;
use super::statement::{statement, unix_millis};
use crate::config::CredentialFiles;

/// Schemes a node signs with, best first (kubelet's and edgecore's keys are ECDSA P-256).
const SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PSS_SHA256,
];

/// Why this node cannot sign an attestation.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read the node certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read the node certificate's private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("cannot sign with the node key: {0}")]
    Sign(String),
}

/// A loaded node credential.
pub struct Credential {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Reads the certificate chain (leaf first) and the private key (PKCS#8, SEC1 or PKCS#1;
    /// kubelet keeps both in `kubelet-client-current.pem`).
    pub fn load(files: &CredentialFiles) -> Result<Credential, CredentialError> {
        let chain = read_chain(&files.cert)?;
        let key_err = |reason: String| CredentialError::Key {
            path: files.key.display().to_string(),
            reason,
        };
        let der = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| key_err(e.to_string()))?;
        let key = rustls::crypto::ring::sign::any_supported_type(&der)
            .map_err(|e| key_err(e.to_string()))?;
        Ok(Credential { chain, key })
    }

    /// An attestation that `peer` is `node`, answering `nonce`, made at `now`.
    pub fn sign(
        &self,
        node: &str,
        peer: PeerId,
        nonce: &[u8],
        now: SystemTime,
    ) -> Result<Attestation, CredentialError> {
        let signer = self.key.choose_scheme(SCHEMES).ok_or_else(|| {
            CredentialError::Sign(format!(
                "the key's algorithm ({:?}) is none of {SCHEMES:?}",
                self.key.algorithm()
            ))
        })?;
        let scheme = u16::from(signer.scheme());
        let timestamp_ms = unix_millis(now);
        let message = statement(node, &peer, timestamp_ms, nonce, scheme);
        let signature = signer
            .sign(&message)
            .map_err(|e| CredentialError::Sign(e.to_string()))?;
        Ok(Attestation {
            node_name: Some(node.to_owned()),
            peer_id: Some(peer.to_bytes()),
            cert_chain: self.chain.iter().map(|c| c.to_vec()).collect(),
            timestamp_ms: Some(timestamp_ms),
            scheme: Some(u32::from(scheme)),
            signature: Some(signature),
            nonce: Some(nonce.to_vec()),
        })
    }
}

/// Every certificate in a PEM file, in order.
pub(super) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let err = |reason: String| CredentialError::Cert {
        path: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if chain.is_empty() {
        return Err(err("no CERTIFICATE block in the file".into()));
    }
    Ok(chain)
}
