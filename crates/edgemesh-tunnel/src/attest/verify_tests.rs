//! The verification table: every way an attestation can be wrong, and which of them are
//! forgeries (always refused) rather than proofs this node cannot check.

use std::time::{Duration, SystemTime};

use libp2p::PeerId;

use super::*;
use crate::attest::Credential;
use crate::attest::test_certs::{TestCa, TestCert};
use crate::config::CredentialFiles;

/// 2026-12-01, inside the test certificates' validity (2020–2040).
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_083_200)
}

const NONCE: [u8; 32] = [7; 32];

struct Fixture {
    dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

impl Fixture {
    fn new(ca: &TestCa) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = ca.write(dir.path(), "ca.crt");
        Fixture { dir, ca_file }
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::load(std::slice::from_ref(&self.ca_file), &[]).unwrap()
    }

    fn credential(&self, cert: &TestCert, name: &str) -> Credential {
        let (cert, key) = cert.write(self.dir.path(), name);
        Credential::load(&CredentialFiles { cert, key }).unwrap()
    }
}

fn sign(cred: &Credential, node: &str, peer: PeerId, at: SystemTime) -> Attestation {
    cred.sign(node, peer, &NONCE, at).unwrap()
}

fn check(
    att: &Attestation,
    node: &str,
    peer: PeerId,
    at: SystemTime,
    anchors: &TrustAnchors,
) -> Result<(), AttestError> {
    let want = Expected {
        node,
        peer,
        nonce: &NONCE,
        now: at,
    };
    verify(att, &want, anchors)
}

#[test]
fn a_node_certificate_from_the_trusted_ca_proves_the_name() {
    let ca = TestCa::new("cluster-ca");
    let fx = Fixture::new(&ca);
    let peer = PeerId::random();
    let att = sign(&fx.credential(&ca.node_cert("b1"), "b1"), "b1", peer, now());
    assert_eq!(check(&att, "b1", peer, now(), &fx.anchors()), Ok(()));
    // EdgeMesh configs may spell a node name in capitals (relays `R1`).
    let upper = sign(&fx.credential(&ca.node_cert("r1"), "r1"), "R1", peer, now());
    assert_eq!(check(&upper, "R1", peer, now(), &fx.anchors()), Ok(()));
}

#[test]
fn one_file_holding_certificate_and_key_works_as_kubelets_does() {
    let ca = TestCa::new("cluster-ca");
    let fx = Fixture::new(&ca);
    let cert = ca.node_cert("b1");
    let pem = fx.dir.path().join("kubelet-client-current.pem");
    std::fs::write(&pem, format!("{}{}", cert.cert_pem, cert.key_pem)).unwrap();
    let files = CredentialFiles {
        cert: pem.clone(),
        key: pem,
    };
    let peer = PeerId::random();
    let att = sign(&Credential::load(&files).unwrap(), "b1", peer, now());
    assert_eq!(check(&att, "b1", peer, now(), &fx.anchors()), Ok(()));
}

#[test]
fn an_intermediate_ca_in_the_chain_is_followed() {
    let root = TestCa::new("root");
    let mid = root.intermediate("kubelet-signer");
    let fx = Fixture::new(&root);
    let leaf = mid.node_cert("b1");
    let chained = TestCert {
        cert_pem: format!("{}{}", leaf.cert_pem, mid.pem),
        key_pem: leaf.key_pem.clone(),
    };
    let peer = PeerId::random();
    let att = sign(&fx.credential(&chained, "b1"), "b1", peer, now());
    assert_eq!(check(&att, "b1", peer, now(), &fx.anchors()), Ok(()));
}

/// One row: an attestation, what the verifier expects, what it must say.
struct Case<'a> {
    what: &'static str,
    att: Attestation,
    node: &'a str,
    peer: PeerId,
    at: SystemTime,
    anchors: &'a TrustAnchors,
    want: AttestError,
    forgery: bool,
}

#[test]
fn the_table_of_refusals() {
    let ca = TestCa::new("cluster-ca");
    let other_ca = TestCa::new("impostor-ca");
    let fx = Fixture::new(&ca);
    let anchors = fx.anchors();
    let no_anchors = TrustAnchors::default();
    let (peer, other_peer) = (PeerId::random(), PeerId::random());
    let b1 = fx.credential(&ca.node_cert("b1"), "b1");
    let good = sign(&b1, "b1", peer, now());
    // An attestation for b1, made with the certificate `cert` (kept under `name`).
    let with = |cert: &TestCert, name| sign(&fx.credential(cert, name), "b1", peer, now());
    let year = Duration::from_secs(365 * 24 * 3600);
    let mut bad_signature = good.clone();
    if let Some(byte) = bad_signature.signature.as_mut().and_then(|s| s.last_mut()) {
        *byte ^= 1;
    }
    let mut other_nonce = good.clone();
    other_nonce.nonce = Some(vec![8; 32]);
    let mut stripped = good.clone();
    stripped.cert_chain.clear();
    // `b1.crt`, written by `fx.credential` above, stands for the shared metaServerSecret one.
    let shared = fx.dir.path().join("b1.crt");
    let shared_anchors = TrustAnchors::load(std::slice::from_ref(&fx.ca_file), &[shared]).unwrap();
    let row = |what, att, want, forgery| Case {
        what,
        att,
        node: "b1",
        peer,
        at: now(),
        anchors: &anchors,
        want,
        forgery,
    };
    let untrusted = AttestError::UntrustedIssuer(String::new());
    let not_a_node = AttestError::NotANodeCertificate(String::new());
    let cases = vec![
        row(
            "wrong CA",
            with(&other_ca.node_cert("b1"), "o"),
            untrusted.clone(),
            false,
        ),
        Case {
            anchors: &no_anchors,
            ..row("no CA configured", good.clone(), untrusted, false)
        },
        row(
            "a real certificate of another node",
            with(&ca.node_cert("a3"), "a3"),
            AttestError::OtherNode {
                cn: "system:node:a3".into(),
                node: "b1".into(),
            },
            true,
        ),
        Case {
            node: "a2",
            ..row(
                "attests another name than it claims",
                good.clone(),
                AttestError::OtherClaim {
                    attested: "b1".into(),
                    claimed: "a2".into(),
                },
                true,
            )
        },
        Case {
            at: now() + 14 * year,
            ..row("expired", good.clone(), AttestError::Expired, false)
        },
        Case {
            at: now() - 7 * year,
            ..row(
                "not yet valid",
                good.clone(),
                AttestError::NotYetValid,
                false,
            )
        },
        row(
            "bad signature",
            bad_signature,
            AttestError::BadSignature(String::new()),
            true,
        ),
        Case {
            peer: other_peer,
            ..row(
                "replayed by another peer id",
                good.clone(),
                AttestError::OtherPeer(peer.to_string()),
                true,
            )
        },
        row(
            "replayed to another nonce",
            other_nonce,
            AttestError::OtherNonce,
            true,
        ),
        row(
            "not a node certificate",
            with(&ca.cert("web", None, 2040), "web"),
            not_a_node.clone(),
            false,
        ),
        row(
            "node CN outside system:nodes",
            with(&ca.cert("system:node:b1", Some("admins"), 2040), "nn"),
            not_a_node,
            false,
        ),
        Case {
            anchors: &shared_anchors,
            ..row(
                "the shared metaServerSecret certificate",
                good.clone(),
                AttestError::SharedCredential,
                false,
            )
        },
        row(
            "clock an hour off",
            sign(&b1, "b1", peer, now() - Duration::from_secs(3600)),
            AttestError::ClockSkew(Duration::from_secs(3600)),
            false,
        ),
        row(
            "no certificate",
            stripped,
            AttestError::Malformed(String::new()),
            false,
        ),
    ];
    for case in cases {
        let what = case.what;
        let got = check(&case.att, case.node, case.peer, case.at, case.anchors).expect_err(what);
        let want = case.want;
        assert_eq!(
            std::mem::discriminant(&got),
            std::mem::discriminant(&want),
            "{what}: {got}"
        );
        // Rows whose error carries a library's wording compare by kind only.
        let worded = matches!(
            want,
            AttestError::UntrustedIssuer(_)
                | AttestError::BadSignature(_)
                | AttestError::NotANodeCertificate(_)
                | AttestError::Malformed(_)
        );
        if !worded {
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(got.is_forgery(), case.forgery, "{what}: {got}");
    }
}

#[test]
fn a_missing_or_bad_ca_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("rootCA.crt");
    let err = TrustAnchors::load(std::slice::from_ref(&missing), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rootCA.crt") && err.contains("caFiles"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = TrustAnchors::load(&[garbage], &[]).unwrap_err().to_string();
    assert!(err.contains("garbage.crt"), "{err}");
}

#[test]
fn a_key_that_does_not_match_the_file_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.crt");
    std::fs::write(&cert, "not pem").unwrap();
    let files = CredentialFiles {
        cert: cert.clone(),
        key: cert,
    };
    let err = Credential::load(&files).unwrap_err().to_string();
    assert!(err.contains("server.crt"), "{err}");
}
