//! Node attestation: a node proves that its tunnel key belongs to its Kubernetes node name with
//! the node's own cluster-issued credential.
//!
//! The prover signs a statement binding (node name, libp2p peer id, time, the verifier's nonce)
//! with the private key of its node certificate — kubelet's client certificate or KubeEdge
//! edgecore's (`CN=system:node:<name>`, `O=system:nodes`, signed by the cluster CA or
//! cloudcore's CA) — and sends the certificate chain with the signature. The verifier checks
//! the chain against the CAs it trusts, that the certificate names the claimed node, and the
//! signature. A PSK holder cannot forge this for a node whose certificate key it does not hold.
//!
//! Spoken over its own protocol id ([`ATTEST_PROTOCOL`]) on the already-authenticated
//! connection: EdgeMesh's Go agents do not offer it (so to them, and for their claims, nothing
//! changes: they count as unattested), and the EdgeMesh discovery message is left as it is.
//! What the verdicts do to a name ↔ key binding is decided in [`crate::pins`].

mod credential;
mod exchange;
mod message;
mod statement;
mod verify;

pub use credential::{Credential, CredentialError};
pub use exchange::ATTEST_PROTOCOL;
pub use message::{Attestation, AttestationRequest};
pub use verify::{AttestError, Expected, MAX_CLOCK_SKEW, TrustAnchors, verify};

pub(crate) use exchange::{fetch, serve};

use std::time::SystemTime;

use libp2p::PeerId;

use crate::TunnelError;
use crate::config::{NodeIdentityConfig, UnattestedPeers};
use crate::pins::Policy;
use crate::psk::PskMode;

/// What a peer's answer to the attestation request proved about its claimed name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// A valid attestation for the claimed name and this peer id.
    Attested,
    /// No attestation that this node can vouch for (none offered, no credential, an unknown
    /// CA, an expired certificate, ...): the reason, for the log.
    Unattested(String),
    /// An attestation that is false (names another node, another peer id, a bad signature):
    /// always refused.
    Forged(String),
    /// No answer came (the connection closed under the request, a timeout): no verdict, the
    /// claim is neither accepted nor refused.
    Unavailable(String),
}

/// This node's side of attestation: the credential it proves its own name with, the CAs it
/// trusts, and what it does with peers that prove nothing.
#[derive(Debug)]
pub(crate) struct NodeIdentity {
    credential: Option<crate::config::CredentialFiles>,
    pub anchors: TrustAnchors,
    pub policy: Policy,
}

impl NodeIdentity {
    /// Loads the trust anchors, checks this node's own credential against them, and resolves
    /// `unattestedPeers: auto`.
    pub fn resolve(
        config: &NodeIdentityConfig,
        node: &str,
        peer: PeerId,
        psk_mode: PskMode,
    ) -> Result<NodeIdentity, TunnelError> {
        let anchors = TrustAnchors::load(&config.ca_files, &config.shared_cert_files)?;
        let own = self_check(config, &anchors, node, peer);
        let policy = match (config.unattested, &own) {
            (UnattestedPeers::Refuse, _) => Policy::Refuse,
            (UnattestedPeers::TrustOnFirstUse, _) => Policy::TrustOnFirstUse,
            (UnattestedPeers::Auto, Ok(())) if psk_mode == PskMode::Noise => Policy::Refuse,
            (UnattestedPeers::Auto, _) => Policy::TrustOnFirstUse,
        };
        log_summary(config, node, &own, policy, psk_mode);
        let credential = own.is_ok().then(|| config.credential.clone()).flatten();
        Ok(NodeIdentity {
            credential,
            anchors,
            policy,
        })
    }

    /// Signs an attestation for `request` (`None`: this node has no usable credential). The
    /// files are read each time: kubelet and edgecore rotate their certificates in place.
    pub fn attest(&self, node: &str, peer: PeerId, nonce: &[u8]) -> Option<Attestation> {
        let files = self.credential.as_ref()?;
        let signed =
            Credential::load(files).and_then(|c| c.sign(node, peer, nonce, SystemTime::now()));
        match signed {
            Ok(attestation) => Some(attestation),
            Err(error) => {
                tracing::warn!(%error, "cannot attest this node's identity");
                None
            }
        }
    }
}

/// Whether this node's own credential names it and verifies against its own trust anchors.
fn self_check(
    config: &NodeIdentityConfig,
    anchors: &TrustAnchors,
    node: &str,
    peer: PeerId,
) -> Result<(), String> {
    let files = config
        .credential
        .as_ref()
        .ok_or_else(|| "no node certificate found".to_owned())?;
    let nonce = [0x5a; 32];
    let now = SystemTime::now();
    let attestation = Credential::load(files)
        .and_then(|c| c.sign(node, peer, &nonce, now))
        .map_err(|e| e.to_string())?;
    let expected = Expected {
        node,
        peer,
        nonce: &nonce,
        now,
    };
    verify(&attestation, &expected, anchors).map_err(|e| {
        format!(
            "this node's certificate {} does not prove its name to its own trust anchors: {e}",
            files.cert.display()
        )
    })
}

fn log_summary(
    config: &NodeIdentityConfig,
    node: &str,
    own: &Result<(), String>,
    policy: Policy,
    psk_mode: PskMode,
) {
    let unattested = match policy {
        Policy::Refuse => "refused",
        Policy::TrustOnFirstUse => "trusted on first use (pinned)",
    };
    let cas: Vec<String> = config
        .ca_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    match own {
        Ok(()) => tracing::info!(
            node,
            cert = ?config.credential.as_ref().map(|f| f.cert.display().to_string()),
            trusted_cas = ?cas,
            unattested_peers = %unattested,
            "node identity: attesting this node's name with its node certificate"
        ),
        Err(reason) => tracing::warn!(
            node,
            %reason,
            trusted_cas = ?cas,
            ?psk_mode,
            unattested_peers = %unattested,
            "node identity: this node cannot attest its name (other nodes trust it on first use only)"
        ),
    }
}

#[cfg(test)]
pub(crate) mod test_certs;

#[cfg(test)]
mod tests {
    use super::test_certs::TestCa;
    use super::*;
    use crate::config::CredentialFiles;

    /// `auto` refuses unattested peers only where this node's own certificate proves its name
    /// and no Go agent can be a member (`noise`); explicit choices win.
    #[test]
    fn the_policy_resolved_from_auto() {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("cluster-ca");
        let ca_file = ca.write(dir.path(), "ca.crt");
        let (cert, key) = ca.node_cert("b1").write(dir.path(), "b1");
        let (other_cert, other_key) = ca.node_cert("a3").write(dir.path(), "a3");
        let own = Some(CredentialFiles { cert, key });
        let other = Some(CredentialFiles {
            cert: other_cert,
            key: other_key,
        });
        use PskMode::{Noise, Pnet};
        use UnattestedPeers::{Auto, Refuse, TrustOnFirstUse as Tofu};
        let cases = [
            (Auto, own.clone(), Noise, Policy::Refuse),
            (Auto, own.clone(), Pnet, Policy::TrustOnFirstUse),
            (Auto, None, Noise, Policy::TrustOnFirstUse),
            // A certificate for another name (the node's own check fails): no attestation.
            (Auto, other, Noise, Policy::TrustOnFirstUse),
            (Refuse, None, Pnet, Policy::Refuse),
            (Tofu, own, Noise, Policy::TrustOnFirstUse),
        ];
        for (i, (unattested, credential, psk_mode, want)) in cases.into_iter().enumerate() {
            let config = NodeIdentityConfig {
                credential,
                ca_files: vec![ca_file.clone()],
                shared_cert_files: Vec::new(),
                unattested,
            };
            let identity =
                NodeIdentity::resolve(&config, "b1", PeerId::random(), psk_mode).unwrap();
            assert_eq!(identity.policy, want, "case {i}");
        }
    }
}
