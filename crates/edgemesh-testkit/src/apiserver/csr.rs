//! CertificateSigningRequests: an approver and kube-controller-manager's signer, for tests.
//!
//! The double stores CSRs like any object (create/get/list/watch, `/status` and `/approval`).
//! What happens to a new one is the [`CsrPolicy`]: left pending (an admin must act: the test
//! calls [`super::ApiServer::approve_csr`] or [`super::ApiServer::deny_csr`]), left for an
//! admin's `kubectl certificate approve` and then signed (the signer alone), approved and
//! signed with a test CA, or denied. Approval and issuance are two writes, as with an approver
//! and the signer being separate controllers. For signer `kubernetes.io/kubelet-serving` the
//! signer checks what kube-controller-manager checks (subject `system:node:*` / `system:nodes`,
//! serving usages, DNS/IP SANs only) and sets `Failed` with reason `SignerValidationFailure`
//! otherwise. Unlike the real signer it honours any `spec.expirationSeconds` (tests renew in
//! seconds); without one the certificate lasts a day.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{CertificateSigningRequestParams, DnType, DnValue, Issuer, KeyPair, SanType};
use serde_json::{Value, json};

use super::Shared;
use super::resources::{CERTIFICATE_SIGNING_REQUESTS, Resource};
use super::status::ApiError;
use super::store::{Event, EventType};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// The signer kubelet uses for serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);

/// A CA that signs approved CSRs (PEM certificate and key).
#[derive(Debug, Clone)]
pub struct SigningCa {
    cert_pem: String,
    key_pem: String,
}

impl SigningCa {
    pub fn new(cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        SigningCa {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        }
    }

    /// `ca.crt` and `ca.key` of a [`crate::tls::Certs`] directory.
    pub fn from_dir(dir: &Path) -> std::io::Result<Self> {
        Ok(SigningCa::new(
            std::fs::read_to_string(dir.join("ca.crt"))?,
            std::fs::read_to_string(dir.join("ca.key"))?,
        ))
    }

    /// Signs the PEM CSR for `lifetime` from now; the error is a message for `Failed`.
    fn sign(&self, csr_pem: &str, lifetime: Duration) -> Result<String, String> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("cannot parse the CSR: {e}"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        // Backdated for clock skew, as kube-controller-manager does (it takes 5 minutes; a
        // tenth of the lifetime here keeps second-long test certificates meaningful).
        let backdate = (lifetime / 10).min(Duration::from_secs(60));
        csr.params.not_before = epoch + now.saturating_sub(backdate);
        csr.params.not_after = epoch + now + lifetime;
        let key = KeyPair::from_pem(&self.key_pem).map_err(|e| format!("CA key: {e}"))?;
        let issuer =
            Issuer::from_ca_cert_pem(&self.cert_pem, key).map_err(|e| format!("CA: {e}"))?;
        csr.signed_by(&issuer)
            .map(|c| c.pem())
            .map_err(|e| format!("signing: {e}"))
    }
}

/// What the double does with a new CertificateSigningRequest.
#[derive(Debug, Clone, Default)]
pub enum CsrPolicy {
    /// Nothing: it stays pending until the test approves or denies it.
    #[default]
    Pending,
    /// Approve it and sign it with this CA.
    Approve(SigningCa),
    /// Approve nothing, but sign with this CA whatever someone approves (`kubectl certificate
    /// approve`, [`super::ApiServer::approve_csr`]): kube-controller-manager's signer alone.
    Sign(SigningCa),
    /// Deny it with this reason and message.
    Deny { reason: String, message: String },
}

/// The store keys objects by plural, so this copy of the table entry addresses them.
static CSRS: Resource = CERTIFICATE_SIGNING_REQUESTS;

fn resource() -> &'static Resource {
    &CSRS
}

/// Adds a condition to CSR `name` (a write, with a MODIFIED event).
fn add_condition(
    shared: &Shared,
    name: &str,
    kind: &str,
    reason: &str,
    message: &str,
) -> Result<Value, ApiError> {
    let r = resource();
    let mut store = shared.store();
    let mut obj = store
        .get(r, "", name)
        .ok_or_else(|| ApiError::not_found(r.plural, r.group, name))?;
    let condition = json!({
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastUpdateTime": super::time::now_rfc3339(),
    });
    match obj["status"]["conditions"].as_array_mut() {
        Some(conditions) => conditions.push(condition),
        None => obj["status"]["conditions"] = json!([condition]),
    }
    store.replace(r, obj, false)
}

/// Approves CSR `name` (condition `Approved`), as `kubectl certificate approve` does.
pub fn approve(shared: &Shared, name: &str) -> Result<Value, ApiError> {
    add_condition(
        shared,
        name,
        "Approved",
        "KubectlApprove",
        "This CSR was approved by the test",
    )
}

/// Denies CSR `name` with `reason` and `message`.
pub fn deny(shared: &Shared, name: &str, reason: &str, message: &str) -> Result<Value, ApiError> {
    add_condition(shared, name, "Denied", reason, message)
}

/// The signer: issues the certificate of an approved CSR, or marks it `Failed`.
pub fn sign(shared: &Shared, name: &str, ca: &SigningCa) -> Result<Value, ApiError> {
    let r = resource();
    let obj = shared
        .store()
        .get(r, "", name)
        .ok_or_else(|| ApiError::not_found(r.plural, r.group, name))?;
    let issued = request_pem(&obj)
        .and_then(|pem| validate(&obj, &pem).map(|()| pem))
        .and_then(|pem| ca.sign(&pem, lifetime(&obj)).map_err(|m| ("SignFailed", m)));
    match issued {
        Ok(cert) => {
            let mut store = shared.store();
            let mut current = store
                .get(r, "", name)
                .ok_or_else(|| ApiError::not_found(r.plural, r.group, name))?;
            current["status"]["certificate"] = json!(STANDARD.encode(cert));
            store.replace(r, current, false)
        }
        Err((reason, message)) => add_condition(shared, name, "Failed", reason, &message),
    }
}

/// Approved, and neither issued nor failed: the signer's turn.
fn awaits_signing(obj: &Value) -> bool {
    let has = |kind: &str| {
        obj.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == kind))
    };
    has("Approved") && !has("Denied") && !has("Failed") && obj["status"]["certificate"].is_null()
}

fn request_pem(obj: &Value) -> Result<String, (&'static str, String)> {
    let encoded = obj
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .unwrap_or("");
    STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or((
            "SignerValidationFailure",
            "spec.request is not base64 PEM".into(),
        ))
}

fn lifetime(obj: &Value) -> Duration {
    obj.pointer("/spec/expirationSeconds")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_LIFETIME, Duration::from_secs)
}

/// kube-controller-manager's checks for kubernetes.io/kubelet-serving (other signers: none).
fn validate(obj: &Value, pem: &str) -> Result<(), (&'static str, String)> {
    if obj.pointer("/spec/signerName").and_then(Value::as_str) != Some(KUBELET_SERVING) {
        return Ok(());
    }
    let fail = |m: String| ("SignerValidationFailure", m);
    let csr = CertificateSigningRequestParams::from_pem(pem)
        .map_err(|e| fail(format!("cannot parse the CSR: {e}")))?;
    let dn = &csr.params.distinguished_name;
    let cn = dn.get(&DnType::CommonName).map(dn_text).unwrap_or_default();
    let org = dn
        .get(&DnType::OrganizationName)
        .map(dn_text)
        .unwrap_or_default();
    if !cn.starts_with("system:node:") || org != "system:nodes" {
        return Err(fail(format!(
            "subject must be CN=system:node:<name>, O=system:nodes, not CN={cn}, O={org}"
        )));
    }
    let sans = &csr.params.subject_alt_names;
    let allowed = |s: &SanType| matches!(s, SanType::DnsName(_) | SanType::IpAddress(_));
    if sans.is_empty() || !sans.iter().all(allowed) {
        return Err(fail("needs DNS or IP subjectAltNames and no others".into()));
    }
    let usages: Vec<&str> = obj
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|u| u.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let permitted = ["digital signature", "key encipherment", "server auth"];
    if !usages.contains(&"server auth") || !usages.iter().all(|u| permitted.contains(u)) {
        return Err(fail(format!("usages {usages:?} are not serving usages")));
    }
    Ok(())
}

fn dn_text(value: &DnValue) -> String {
    match value {
        DnValue::Utf8String(s) => s.clone(),
        DnValue::PrintableString(s) => s.as_str().to_owned(),
        DnValue::Ia5String(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

/// Applies the policy to every CSR created, for the life of the server.
pub async fn run_policy(shared: Arc<Shared>, mut events: broadcast::Receiver<Arc<Event>>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        if event.resource != CSRS.plural || event.kind == EventType::Deleted {
            continue;
        }
        let name = event.object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let added = event.kind == EventType::Added;
        // Errors: the CSR went away meanwhile; nothing to do.
        let _ = match shared.csr_policy() {
            CsrPolicy::Approve(ca) if added => {
                approve(&shared, &name).and_then(|_| sign(&shared, &name, &ca))
            }
            CsrPolicy::Sign(ca) if awaits_signing(&event.object) => sign(&shared, &name, &ca),
            CsrPolicy::Deny { reason, message } if added => deny(&shared, &name, &reason, &message),
            _ => continue,
        };
    }
}
