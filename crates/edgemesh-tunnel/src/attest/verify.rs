//! Checking a peer's attestation: certificate chain to a trusted CA, a node certificate naming
//! the claimed node, the peer id and nonce of this connection, the clock, the signature.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use libp2p::PeerId;
use rustls::SignatureScheme;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::credential::read_chain;
use super::message::Attestation;
use super::statement::{from_unix_millis, statement};
use crate::TunnelError;

/// How far a prover's clock may be from the verifier's. The nonce already makes every
/// attestation fresh; the timestamp guards against a badly wrong clock and dates the log.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(600);

/// Kubernetes' prefix of a node's user name (kubelet's and edgecore's certificate CN).
const NODE_CN_PREFIX: &str = "system:node:";
/// Kubernetes' group of nodes (the certificate's O).
const NODES_GROUP: &str = "system:nodes";

/// The CAs this node trusts to name nodes, and certificates every member may hold (EdgeMesh's
/// shared `metaServerSecret`), which therefore prove nothing.
#[derive(Debug, Default)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
    shared: Vec<Vec<u8>>,
}

impl TrustAnchors {
    /// Every certificate of every `ca_files` file is a trust anchor.
    pub fn load(ca_files: &[PathBuf], shared_cert_files: &[PathBuf]) -> Result<Self, TunnelError> {
        let mut anchors = Vec::new();
        for path in ca_files {
            let bad = |reason: String| TunnelError::TrustAnchor {
                path: path.clone(),
                reason,
            };
            for der in read_chain(path).map_err(|e| bad(e.to_string()))? {
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| bad(format!("not a usable CA certificate: {e:?}")))?;
                anchors.push(anchor.to_owned());
            }
        }
        let mut shared = Vec::new();
        for path in shared_cert_files {
            match read_chain(path) {
                Ok(chain) => shared.extend(chain.into_iter().map(|c| c.to_vec())),
                Err(error) => tracing::debug!(%error, "no shared certificate to exclude"),
            }
        }
        Ok(TrustAnchors { anchors, shared })
    }

    /// Whether no CA is trusted (then no attestation can be verified).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// What the verifier expects: the name the peer claimed, the peer id of the connection, the
/// nonce it sent, and its own clock.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub node: &'a str,
    pub peer: PeerId,
    pub nonce: &'a [u8],
    pub now: SystemTime,
}

/// Why an attestation was not accepted. [`AttestError::is_forgery`] tells a false statement
/// (always refused) from one this node cannot vouch for (treated as no attestation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    #[error("the attestation is for node '{attested}', the peer claims '{claimed}'")]
    OtherClaim { attested: String, claimed: String },
    #[error("the attestation was made for another peer id ({0})")]
    OtherPeer(String),
    #[error("the attestation answers another nonce (a replay)")]
    OtherNonce,
    #[error("the certificate names '{cn}', not node '{node}'")]
    OtherNode { cn: String, node: String },
    #[error("the signature does not verify with the certificate's key: {0}")]
    BadSignature(String),
    #[error("no trusted CA issued the certificate ({0})")]
    UntrustedIssuer(String),
    #[error("the certificate has expired")]
    Expired,
    #[error("the certificate is not valid yet")]
    NotYetValid,
    #[error("not a node certificate ({0}; want CN=system:node:<name>, O=system:nodes)")]
    NotANodeCertificate(String),
    #[error("the certificate is the shared metaServerSecret one, which every member may hold")]
    SharedCredential,
    #[error("the attestation's time is {0:?} off this node's clock (more than {MAX_CLOCK_SKEW:?})")]
    ClockSkew(Duration),
    #[error("malformed attestation: {0}")]
    Malformed(String),
}

impl AttestError {
    /// A statement that is false (as opposed to one this node cannot check): the peer holds a
    /// real credential and uses it for what it does not prove, or made up a signature.
    pub fn is_forgery(&self) -> bool {
        matches!(
            self,
            AttestError::OtherClaim { .. }
                | AttestError::OtherPeer(_)
                | AttestError::OtherNonce
                | AttestError::OtherNode { .. }
                | AttestError::BadSignature(_)
        )
    }
}

/// Checks `att` against what this connection expects; `Ok` means the peer proved the name.
pub fn verify(
    att: &Attestation,
    want: &Expected<'_>,
    anchors: &TrustAnchors,
) -> Result<(), AttestError> {
    let claimed = att.node_name.as_deref().unwrap_or_default();
    if claimed != want.node {
        return Err(AttestError::OtherClaim {
            attested: claimed.to_owned(),
            claimed: want.node.to_owned(),
        });
    }
    check_binding(att, want)?;
    let (leaf, intermediates) = att
        .cert_chain
        .split_first()
        .ok_or_else(|| AttestError::Malformed("no certificate".into()))?;
    if anchors.shared.iter().any(|s| s == leaf) {
        return Err(AttestError::SharedCredential);
    }
    let leaf = CertificateDer::from(leaf.as_slice());
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let cert = EndEntityCert::try_from(&leaf)
        .map_err(|e| AttestError::Malformed(format!("certificate: {e:?}")))?;
    check_chain(&cert, &intermediates, anchors, want.now)?;
    check_names(&leaf, want.node)?;
    check_signature(att, &cert, want)?;
    check_clock(att, want.now)
}

fn check_binding(att: &Attestation, want: &Expected<'_>) -> Result<(), AttestError> {
    let peer = att.peer_id.as_deref().unwrap_or_default();
    if peer != want.peer.to_bytes().as_slice() {
        let shown =
            PeerId::from_bytes(peer).map_or_else(|_| "unparsable".into(), |p| p.to_string());
        return Err(AttestError::OtherPeer(shown));
    }
    if att.nonce.as_deref() != Some(want.nonce) {
        return Err(AttestError::OtherNonce);
    }
    Ok(())
}

fn check_chain(
    cert: &EndEntityCert<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &TrustAnchors,
    now: SystemTime,
) -> Result<(), AttestError> {
    if anchors.is_empty() {
        return Err(AttestError::UntrustedIssuer("no CA is configured".into()));
    }
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let verified = cert.verify_for_usage(
        algs.all,
        &anchors.anchors,
        intermediates,
        UnixTime::since_unix_epoch(since_epoch),
        KeyUsage::client_auth(),
        None,
        None,
    );
    match verified {
        Ok(_) => Ok(()),
        Err(webpki::Error::CertExpired { .. }) => Err(AttestError::Expired),
        Err(webpki::Error::CertNotValidYet { .. }) => Err(AttestError::NotYetValid),
        Err(e) => Err(AttestError::UntrustedIssuer(format!("{e:?}"))),
    }
}

/// The certificate must be a node's (`O=system:nodes`) and name `node` in its CN.
fn check_names(leaf: &CertificateDer<'_>, node: &str) -> Result<(), AttestError> {
    let (_, cert) = X509Certificate::from_der(leaf)
        .map_err(|e| AttestError::Malformed(format!("certificate subject: {e}")))?;
    let subject = cert.subject();
    let in_group = subject
        .iter_organization()
        .any(|o| o.as_str().is_ok_and(|o| o == NODES_GROUP));
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    let Some(named) = cn.strip_prefix(NODE_CN_PREFIX).filter(|_| in_group) else {
        return Err(AttestError::NotANodeCertificate(format!(
            "subject {subject}"
        )));
    };
    // Kubernetes node names are lower case; EdgeMesh configs may spell them otherwise.
    if !named.eq_ignore_ascii_case(node) {
        return Err(AttestError::OtherNode {
            cn: cn.to_owned(),
            node: node.to_owned(),
        });
    }
    Ok(())
}

fn check_signature(
    att: &Attestation,
    cert: &EndEntityCert<'_>,
    want: &Expected<'_>,
) -> Result<(), AttestError> {
    let bad = |reason: &str| AttestError::BadSignature(reason.to_owned());
    let scheme = att
        .scheme
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| bad("no signature scheme"))?;
    let message = statement(
        want.node,
        &want.peer,
        att.timestamp_ms.unwrap_or_default(),
        want.nonce,
        scheme,
    );
    let signature = att.signature.as_deref().unwrap_or_default();
    let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let scheme = SignatureScheme::from(scheme);
    let candidates = algs
        .mapping
        .iter()
        .find(|(s, _)| *s == scheme)
        .map(|(_, algs)| *algs)
        .ok_or_else(|| bad(&format!("unsupported scheme {scheme:?}")))?;
    let verifies = candidates
        .iter()
        .any(|alg| cert.verify_signature(*alg, &message, signature).is_ok());
    if !verifies {
        return Err(bad(&format!("{scheme:?}")));
    }
    Ok(())
}

fn check_clock(att: &Attestation, now: SystemTime) -> Result<(), AttestError> {
    let then = from_unix_millis(att.timestamp_ms.unwrap_or_default());
    let skew = match now.duration_since(then) {
        Ok(behind) => behind,
        Err(ahead) => ahead.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        return Err(AttestError::ClockSkew(skew));
    }
    Ok(())
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
