//! CertificateSigningRequests on the apiserver double, through the real kube-rs client: the
//! auto-approver signs with a test CA (checked with `openssl verify`), the kubelet-serving
//! signer's rules fail bad requests, an admin approves through the `approval` subresource,
//! denial and RBAC refusals read like upstream.
// Test helpers: a failed set-up step should panic with its error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use edgemesh_testkit::apiserver::{ApiServer, CsrPolicy, KUBELET_SERVING, SigningCa};
use edgemesh_testkit::tls::Certs;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn client(server: &ApiServer) -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(server.url().parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

/// A CSR object for `cn`/`org` with DNS SAN `localhost`, usages serving.
fn csr(name: &str, cn: &str, org: &str) -> CertificateSigningRequest {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": STANDARD.encode(pem),
            "signerName": KUBELET_SERVING,
            "usages": ["digital signature", "server auth"],
            "expirationSeconds": 700,
        },
    }))
    .unwrap()
}

/// Polls (bounded) until `done` holds for the stored CSR.
async fn wait_for(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let obj = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
        if done(&obj) {
            return obj;
        }
        assert!(
            Instant::now() < deadline,
            "CSR {name} never got there: {obj}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn condition(obj: &Value, kind: &str) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

fn issued(obj: &Value) -> bool {
    obj["status"]["certificate"].is_string()
}

#[tokio::test]
async fn the_auto_approver_signs_with_the_test_ca() {
    let certs = Certs::new();
    let ca = SigningCa::from_dir(certs.dir()).unwrap();
    let server = ApiServer::builder()
        .csr_policy(CsrPolicy::Approve(ca))
        .start()
        .unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(client(&server));
    let good = csr("good", "system:node:edge-1", "system:nodes");
    api.create(&PostParams::default(), &good).await.unwrap();
    let obj = wait_for(&api, "good", issued).await;
    assert_eq!(condition(&obj, "Approved").unwrap()["status"], "True");
    let pem = STANDARD
        .decode(obj["status"]["certificate"].as_str().unwrap())
        .unwrap();
    let cert = certs.dir().join("good.crt");
    std::fs::write(&cert, pem).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", &certs.path("ca.crt")])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // The kubelet-serving signer's rules: a subject that is not a node's fails the request.
    let bad = csr("bad", "edgemesh-hub", "edgemesh");
    api.create(&PostParams::default(), &bad).await.unwrap();
    let obj = wait_for(&api, "bad", |o| condition(o, "Failed").is_some()).await;
    let failed = condition(&obj, "Failed").unwrap();
    assert_eq!(failed["reason"], "SignerValidationFailure");
    assert!(failed["message"].as_str().unwrap().contains("system:node:"));
    assert!(!issued(&obj));
}

#[tokio::test]
async fn pending_until_an_admin_approves_or_denies() {
    let certs = Certs::new();
    let ca = SigningCa::from_dir(certs.dir()).unwrap();
    let server = ApiServer::start().unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(client(&server));
    for name in ["by-kubectl", "by-handle", "denied"] {
        let request = csr(name, "system:node:edge-1", "system:nodes");
        api.create(&PostParams::default(), &request).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pending = serde_json::to_value(api.get("by-kubectl").await.unwrap()).unwrap();
    assert!(condition(&pending, "Approved").is_none() && !issued(&pending));
    // What `kubectl certificate approve` sends: the approval subresource.
    let approval = json!({"status": {"conditions": [
        {"type": "Approved", "status": "True", "reason": "KubectlApprove", "message": "ok"}
    ]}});
    api.patch_approval(
        "by-kubectl",
        &PatchParams::default(),
        &Patch::Merge(&approval),
    )
    .await
    .unwrap();
    let obj = wait_for(&api, "by-kubectl", |o| condition(o, "Approved").is_some()).await;
    assert!(
        !issued(&obj),
        "approval alone issues nothing: the signer does"
    );
    server.approve_csr("by-handle", &ca).unwrap();
    wait_for(&api, "by-handle", issued).await;
    server
        .deny_csr("denied", "NotOnThisNode", "the node does not run a hub")
        .unwrap();
    let obj = wait_for(&api, "denied", |o| condition(o, "Denied").is_some()).await;
    assert_eq!(
        condition(&obj, "Denied").unwrap()["reason"],
        "NotOnThisNode"
    );
}

#[tokio::test]
async fn the_signer_alone_issues_what_an_admin_approves() {
    let certs = Certs::new();
    let ca = SigningCa::from_dir(certs.dir()).unwrap();
    let server = ApiServer::builder()
        .csr_policy(CsrPolicy::Sign(ca))
        .start()
        .unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(client(&server));
    let request = csr("admin", "system:node:edge-1", "system:nodes");
    api.create(&PostParams::default(), &request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pending = serde_json::to_value(api.get("admin").await.unwrap()).unwrap();
    assert!(!issued(&pending), "nothing is signed before approval");
    // What `kubectl certificate approve` sends: the object with the condition added, PUT to
    // the approval subresource (kubectl itself writes protobuf, which the double does not
    // speak, so kube-rs sends the same object as JSON).
    let mut approved = pending.clone();
    approved["status"]["conditions"] = json!([
        {"type": "Approved", "status": "True", "reason": "KubectlApprove", "message": "ok"}
    ]);
    api.replace_subresource("approval", "admin", &PostParams::default(), &approved)
        .await
        .unwrap();
    let obj = wait_for(&api, "admin", issued).await;
    assert_eq!(
        condition(&obj, "Approved").unwrap()["reason"],
        "KubectlApprove"
    );
}

#[tokio::test]
async fn rbac_refusals_name_the_verb_and_resource() {
    let server = ApiServer::builder()
        .forbid("certificatesigningrequests")
        .start()
        .unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(client(&server));
    let request = csr("x", "system:node:edge-1", "system:nodes");
    let err = api
        .create(&PostParams::default(), &request)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "cannot create resource \"certificatesigningrequests\" in API group \"certificates.k8s.io\""
        ),
        "{text}"
    );
}
