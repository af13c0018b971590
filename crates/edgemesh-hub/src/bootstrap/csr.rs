//! The request: a fresh key, a PKCS#10 CSR for the hub's serving identity, the
//! `certificates.k8s.io/v1` object carrying it, and what a CSR's status says.
//!
//! The signer is `kubernetes.io/kubelet-serving`: it is the only built-in signer that issues
//! *serving* certificates, and kube-controller-manager signs it with the cluster CA, which every
//! pod already trusts (its service-account `ca.crt`). Its rules shape the request: the subject
//! must be `CN=system:node:<node>, O=system:nodes`, the SANs DNS names and IP addresses only,
//! the usages `digital signature` + `server auth` (plus `key encipherment` for RSA keys; ours are
//! ECDSA P-256). kubelet asks for its own serving certificate the same way
//! (`--rotate-server-certificates`).

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::BootstrapError;

/// The signer kubelet uses for its own serving certificate (see the module comment).
pub const SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The usages the kubelet-serving signer accepts for an ECDSA key.
pub const USAGES: [&str; 2] = ["digital signature", "server auth"];
/// The group RBAC names in its rules.
pub const API_GROUP: &str = "certificates.k8s.io";
/// The shortest lifetime the apiserver accepts in `spec.expirationSeconds`.
pub const MIN_EXPIRATION_SECONDS: u64 = 600;

/// Who the certificate is for and what it must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node_name: String,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Identity {
    /// The hub's identity on `node_name`: its HTTPS address (when it has one), loopback and
    /// `localhost`, plus `extra` names (an IP literal becomes an IP SAN, anything else a DNS
    /// name). Duplicates are dropped, the order is kept.
    pub fn new(node_name: &str, listen_ip: Option<IpAddr>, extra: &[String]) -> Self {
        let mut identity = Identity {
            node_name: node_name.to_owned(),
            dns_names: Vec::new(),
            ips: Vec::new(),
        };
        let fixed = ["127.0.0.1".to_owned(), "localhost".to_owned()];
        let listen = listen_ip
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| ip.to_string());
        for name in listen.iter().chain(&fixed).chain(extra) {
            identity.add(name.trim());
        }
        identity
    }

    fn add(&mut self, name: &str) {
        if name.is_empty() {
            return;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) if !self.ips.contains(&ip) => self.ips.push(ip),
            Ok(_) => {}
            Err(_) if !self.dns_names.iter().any(|n| n == name) => {
                self.dns_names.push(name.to_owned());
            }
            Err(_) => {}
        }
    }

    /// `system:node:<node>`, the common name the signer requires.
    pub fn common_name(&self) -> String {
        format!("system:node:{}", self.node_name)
    }
}

/// A private key and the PEM CSR made with it.
#[derive(Debug)]
pub struct Request {
    pub key: KeyPair,
    pub csr_pem: String,
}

/// A fresh ECDSA P-256 key.
pub fn new_key() -> Result<KeyPair, BootstrapError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| BootstrapError::Key(format!("cannot generate a P-256 key: {e}")))
}

/// A CSR for `identity` signed with `key`.
pub fn new_request(identity: &Identity, key: KeyPair) -> Result<Request, BootstrapError> {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, identity.common_name());
    subject.push(DnType::OrganizationName, "system:nodes");
    params.distinguished_name = subject;
    for name in &identity.dns_names {
        let dns = name.clone().try_into().map_err(|e| {
            BootstrapError::Config(format!(
                "'{name}' cannot be a DNS name in a certificate: {e}"
            ))
        })?;
        params.subject_alt_names.push(SanType::DnsName(dns));
    }
    params
        .subject_alt_names
        .extend(identity.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| BootstrapError::Key(format!("cannot build the CSR: {e}")))?;
    Ok(Request { key, csr_pem: csr })
}

/// The CSR's name: the node, then a digest of the key and of what is asked. The same key and
/// request give the same name (as kubelet names its CSRs), so a restarted bootstrap finds the
/// CSR it created before (and its approval) instead of asking again.
pub fn name(identity: &Identity, key: &KeyPair, lifetime_seconds: Option<u64>) -> String {
    let mut digest = Sha256::new();
    digest.update(key.subject_public_key_info());
    digest.update(identity.common_name());
    for dns in &identity.dns_names {
        digest.update([0]);
        digest.update(dns);
    }
    for ip in &identity.ips {
        digest.update([1]);
        digest.update(ip.to_string());
    }
    digest.update(lifetime_seconds.unwrap_or(0).to_be_bytes());
    let hex: String = digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Names are at most 253 characters; node names may be as long.
    let node: String = identity.node_name.chars().take(200).collect();
    format!("edgemesh-hub-{node}-{hex}")
}

/// The `CertificateSigningRequest` object to create, named by [`name`].
pub fn object(name: &str, csr_pem: &str, lifetime_seconds: Option<u64>) -> Value {
    let mut spec = json!({
        "request": STANDARD.encode(csr_pem),
        "signerName": SIGNER,
        "usages": USAGES,
    });
    if let Some(seconds) = lifetime_seconds {
        spec["expirationSeconds"] = json!(seconds);
    }
    json!({
        "apiVersion": format!("{API_GROUP}/v1"),
        "kind": "CertificateSigningRequest",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "edgemesh-hub"},
        },
        "spec": spec,
    })
}

/// Where a CSR stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Nobody decided yet.
    Pending,
    /// Approved; the signer has not issued the certificate yet.
    Approved,
    /// `status.certificate`, decoded (PEM).
    Issued(String),
    Denied {
        reason: String,
        message: String,
    },
    Failed {
        reason: String,
        message: String,
    },
}

/// Reads `status` of a CSR object. Denied or Failed win over an issued certificate (a signer
/// never issues for those); an undecodable certificate is a failure naming the field.
pub fn standing(obj: &Value) -> Standing {
    let conditions = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let condition = |kind: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == kind && c["status"].as_str().unwrap_or("True") == "True")
    };
    let text = |c: &Value, field: &str| c[field].as_str().unwrap_or("").to_owned();
    for (kind, denied) in [("Denied", true), ("Failed", false)] {
        if let Some(c) = condition(kind) {
            let (reason, message) = (text(c, "reason"), text(c, "message"));
            return if denied {
                Standing::Denied { reason, message }
            } else {
                Standing::Failed { reason, message }
            };
        }
    }
    let certificate = obj
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    if let Some(encoded) = certificate {
        return match STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(pem) => Standing::Issued(pem),
            None => Standing::Failed {
                reason: "BadCertificate".into(),
                message: "status.certificate is not base64-encoded PEM".into(),
            },
        };
    }
    if condition("Approved").is_some() {
        Standing::Approved
    } else {
        Standing::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_covers_the_listen_address_loopback_and_extra_names() {
        let extra = [
            "hub.edge".to_owned(),
            "10.0.0.5".to_owned(),
            " localhost ".into(),
        ];
        let id = Identity::new("edge-1", "169.254.2.1".parse().ok(), &extra);
        let ips: Vec<String> = id.ips.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["169.254.2.1", "127.0.0.1", "10.0.0.5"]);
        assert_eq!(id.dns_names, ["localhost", "hub.edge"]);
        assert_eq!(id.common_name(), "system:node:edge-1");
        let unspecified = Identity::new("n", "0.0.0.0".parse().ok(), &[]);
        assert_eq!(unspecified.ips, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn the_object_asks_the_kubelet_serving_signer() {
        let id = Identity::new("edge-1", None, &[]);
        let request = new_request(&id, new_key().unwrap()).unwrap();
        assert!(
            request
                .csr_pem
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
        let obj = object("n", &request.csr_pem, Some(3600));
        assert_eq!(obj["spec"]["signerName"], SIGNER);
        assert_eq!(
            obj["spec"]["usages"],
            json!(["digital signature", "server auth"])
        );
        assert_eq!(obj["spec"]["expirationSeconds"], 3600);
        assert_eq!(obj["metadata"]["name"], "n");
        let sent = STANDARD
            .decode(obj["spec"]["request"].as_str().unwrap())
            .unwrap();
        assert_eq!(sent, request.csr_pem.as_bytes());
        assert!(
            object("n", "x", None)["spec"]
                .get("expirationSeconds")
                .is_none()
        );
    }

    #[test]
    fn the_name_follows_the_key_and_the_request() {
        let id = Identity::new("edge-1", None, &[]);
        let key = new_key().unwrap();
        let first = name(&id, &key, None);
        assert!(first.starts_with("edgemesh-hub-edge-1-"), "{first}");
        assert_eq!(first.len(), "edgemesh-hub-edge-1-".len() + 16);
        assert_eq!(
            name(&id, &key, None),
            first,
            "same key and request, same name"
        );
        assert_ne!(name(&id, &new_key().unwrap(), None), first);
        assert_ne!(name(&id, &key, Some(600)), first);
        let more = Identity::new("edge-1", None, &["hub.edge".into()]);
        assert_ne!(name(&more, &key, None), first);
        let long = Identity::new(&"n".repeat(253), None, &[]);
        assert!(name(&long, &key, None).len() <= 253);
    }

    #[test]
    fn standing_reads_conditions_and_certificate() {
        let with = |status: Value| json!({"status": status});
        assert_eq!(standing(&json!({})), Standing::Pending);
        let approved = json!({"conditions": [{"type": "Approved", "status": "True"}]});
        assert_eq!(standing(&with(approved)), Standing::Approved);
        let issued = json!({
            "conditions": [{"type": "Approved", "status": "True"}],
            "certificate": STANDARD.encode("PEM"),
        });
        assert_eq!(standing(&with(issued)), Standing::Issued("PEM".into()));
        let denied = json!({"conditions": [
            {"type": "Denied", "status": "True", "reason": "NotOurs", "message": "no"}
        ]});
        assert_eq!(
            standing(&with(denied)),
            Standing::Denied {
                reason: "NotOurs".into(),
                message: "no".into()
            }
        );
        let failed = json!({"conditions": [
            {"type": "Approved", "status": "True"},
            {"type": "Failed", "status": "True", "reason": "SignerValidationFailure", "message": "bad CN"}
        ]});
        assert!(
            matches!(standing(&with(failed)), Standing::Failed { reason, .. } if reason == "SignerValidationFailure")
        );
        let garbage = json!({"certificate": "%%%"});
        assert!(matches!(standing(&with(garbage)), Standing::Failed { .. }));
        let revoked = json!({"conditions": [{"type": "Approved", "status": "False"}]});
        assert_eq!(standing(&with(revoked)), Standing::Pending);
    }
}
