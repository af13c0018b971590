//! `edgemesh hub bootstrap` (issue #15 item 3), the real binary against the apiserver double's
//! certificates API: approved → key and certificate written (the certificate chains to the test
//! CA, carries the SANs and the key), a good pair on disk → nothing requested, denied → exit 1
//! naming the reason, RBAC 403 → exit 1 naming the permission, no approver → a bounded wait
//! that names `kubectl certificate approve`; and the running hub renewing a short-lived
//! certificate and reloading it without a restart. Loopback only; no root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use edgemesh_testkit::apiserver::{ApiServer, CsrPolicy, KUBELET_SERVING, SigningCa};
use edgemesh_testkit::hub::{HubCommand, SECURE_LISTENING};
use edgemesh_testkit::process::{Process, listen_addr};
use edgemesh_testkit::tls::Certs;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_edgemesh");
const EXIT_LIMIT: Duration = Duration::from_secs(30);

/// Where the pair goes, in a temporary directory (a `pki` subdirectory the binary creates).
struct Pair {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl Pair {
    fn new() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("pki/hub.crt");
        let key = dir.path().join("pki/hub.key");
        Pair {
            _dir: dir,
            cert,
            key,
        }
    }
}

/// `edgemesh hub bootstrap` against `api` for node edge-1, writing `pair`.
fn bootstrap_args(api: &ApiServer, pair: &Pair) -> Vec<String> {
    let path = |p: &PathBuf| p.to_string_lossy().into_owned();
    [
        "hub",
        "bootstrap",
        "--server-addr",
        &api.url(),
        "--node-name",
        "edge-1",
        "--cert-file",
        &path(&pair.cert),
        "--key-file",
        &path(&pair.key),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs `edgemesh hub bootstrap` (with two extra SANs and `extra`) to completion; returns its
/// status and output.
fn bootstrap(api: &ApiServer, pair: &Pair, extra: &[&str]) -> (ExitStatus, String) {
    let mut args = bootstrap_args(api, pair);
    args.extend(
        ["--tls-san", "hub.edge.example,10.0.0.5"]
            .iter()
            .chain(extra)
            .map(|a| a.to_string()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut process = Process::start(BIN, &args, None).unwrap();
    let status = process.wait_exit(EXIT_LIMIT).unwrap();
    (status, process.logs())
}

/// Where bootstrap keeps the key of an unanswered request.
fn pending(pair: &Pair) -> PathBuf {
    pair.key.with_file_name(".hub.key.pending")
}

fn approving_api(certs: &Certs) -> ApiServer {
    let ca = SigningCa::from_dir(certs.dir()).unwrap();
    ApiServer::builder()
        .csr_policy(CsrPolicy::Approve(ca))
        .start()
        .unwrap()
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SHA-1 fingerprint line of the certificate the TLS server at `addr` presents.
fn served_fingerprint(addr: &str) -> String {
    let script = format!(
        "timeout 10 openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint"
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn csrs(api: &ApiServer) -> Vec<String> {
    api.requests()
        .into_iter()
        .filter(|r| r.starts_with("POST /apis/certificates.k8s.io/v1/certificatesigningrequests"))
        .collect()
}

/// A CSR as the double stores it.
fn stored_csr(api: &ApiServer, name: &str) -> Value {
    api.get(
        "certificates.k8s.io/v1",
        "CertificateSigningRequest",
        "",
        name,
    )
    .unwrap_or_else(|| panic!("CSR {name} is not stored"))
}

/// The CSR name the binary logged (`csr=<name>`).
fn logged_csr(logs: &str) -> String {
    let at = logs
        .find("csr=")
        .unwrap_or_else(|| panic!("no csr= in:\n{logs}"));
    logs[at + 4..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .find(|s| !s.is_empty())
        .unwrap()
        .to_owned()
}

#[test]
fn approved_writes_a_pair_that_chains_to_the_ca_and_carries_the_sans() {
    let certs = Certs::new();
    let api = approving_api(&certs);
    let pair = Pair::new();
    let (status, logs) = bootstrap(&api, &pair, &[]);
    assert!(status.success(), "{status}: {logs}");
    assert!(logs.contains("serving certificate written"), "{logs}");

    let verify = openssl(&["verify", "-CAfile", &certs.path("ca.crt"), path(&pair.cert)]);
    assert!(verify.contains(": OK"), "{verify}");
    let text = openssl(&["x509", "-in", path(&pair.cert), "-noout", "-text"]);
    for san in [
        "IP Address:169.254.2.1",
        "IP Address:127.0.0.1",
        "IP Address:10.0.0.5",
        "DNS:localhost",
        "DNS:hub.edge.example",
    ] {
        assert!(text.contains(san), "{san} missing:\n{text}");
    }
    assert!(text.contains("CN = system:node:edge-1"), "{text}");
    assert!(text.contains("O = system:nodes"), "{text}");
    // The certificate is the written key's.
    let from_cert = openssl(&["x509", "-in", path(&pair.cert), "-noout", "-pubkey"]);
    let from_key = openssl(&["pkey", "-in", path(&pair.key), "-pubout"]);
    assert_eq!(from_cert, from_key);
    for file in [&pair.key, &pair.cert] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    // What was asked: the kubelet-serving signer with serving usages.
    let csr = stored_csr(&api, &logged_csr(&logs));
    assert_eq!(csr["spec"]["signerName"], KUBELET_SERVING);
    assert_eq!(
        csr["spec"]["usages"],
        serde_json::json!(["digital signature", "server auth"])
    );
    assert_eq!(csrs(&api).len(), 1);
    // The object is a valid certificates.k8s.io/v1 CSR, and its request verifies (the
    // apiserver parses it and checks its signature on create).
    let typed: k8s_openapi::api::certificates::v1::CertificateSigningRequest =
        serde_json::from_value(csr.clone()).unwrap();
    let request = pair.cert.with_file_name("request.csr");
    std::fs::write(&request, typed.spec.request.0).unwrap();
    let verified = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-in", path(&request)])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // Run again: the pair on disk is good, nothing is requested.
    let (status, logs) = bootstrap(&api, &pair, &[]);
    assert!(status.success(), "{status}: {logs}");
    assert!(logs.contains("still valid"), "{logs}");
    assert_eq!(csrs(&api).len(), 1, "a second CSR was created:\n{logs}");
    // A new name wanted: the pair no longer covers it, so a new one is requested.
    let (status, logs) = bootstrap(&api, &pair, &["--tls-san", "other.example"]);
    assert!(status.success(), "{status}: {logs}");
    assert_eq!(csrs(&api).len(), 2, "{logs}");
    let text = openssl(&["x509", "-in", path(&pair.cert), "-noout", "-text"]);
    assert!(text.contains("DNS:other.example"), "{text}");
}

#[test]
fn denied_exits_non_zero_naming_the_reason() {
    let api = ApiServer::builder()
        .csr_policy(CsrPolicy::Deny {
            reason: "NotAnEdgeNode".into(),
            message: "edge-1 is not in the edge pool".into(),
        })
        .start()
        .unwrap();
    let pair = Pair::new();
    let (status, logs) = bootstrap(&api, &pair, &[]);
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("was denied: reason NotAnEdgeNode"), "{logs}");
    assert!(logs.contains("edge-1 is not in the edge pool"), "{logs}");
    assert!(
        !pair.key.exists() && !pair.cert.exists(),
        "nothing is written"
    );
    assert!(
        !pending(&pair).exists(),
        "a denied request's key is dropped"
    );
}

#[test]
fn rbac_refusal_names_the_permission() {
    let api = ApiServer::builder()
        .forbid("certificatesigningrequests")
        .start()
        .unwrap();
    let pair = Pair::new();
    let (status, logs) = bootstrap(&api, &pair, &[]);
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(
        logs.contains(
            "RBAC refuses verb \"create\" on certificatesigningrequests.certificates.k8s.io"
        ),
        "{logs}"
    );
    assert!(logs.contains("verbs: [create, get, watch]"), "{logs}");
}

#[test]
fn without_an_approver_the_wait_is_bounded_and_says_how_to_approve() {
    let api = ApiServer::start().unwrap();
    let pair = Pair::new();
    let (status, logs) = bootstrap(&api, &pair, &["--csr-timeout", "2s"]);
    assert_eq!(status.code(), Some(1), "{logs}");
    let name = logged_csr(&logs);
    assert!(logs.contains("was not approved within"), "{logs}");
    assert!(
        logs.contains(&format!("kubectl certificate approve {name}")),
        "{logs}"
    );
}

#[test]
fn a_restart_waits_on_the_same_request_and_keeps_its_approval() {
    let certs = Certs::new();
    let ca = SigningCa::from_dir(certs.dir()).unwrap();
    let api = ApiServer::start().unwrap();
    let pair = Pair::new();
    let (status, logs) = bootstrap(&api, &pair, &["--csr-timeout", "1s"]);
    assert_eq!(status.code(), Some(1), "{logs}");
    let name = logged_csr(&logs);
    assert!(
        pending(&pair).exists(),
        "the unanswered request's key is kept"
    );
    // Restarted (a failed initContainer is): the same CSR, not a second one to approve.
    let (status, logs) = bootstrap(&api, &pair, &["--csr-timeout", "1s"]);
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("exists from an earlier run"), "{logs}");
    assert_eq!(logged_csr(&logs), name);
    // The admin approves it while nothing runs; the next start picks the certificate up.
    api.approve_csr(&name, &ca).unwrap();
    let (status, logs) = bootstrap(&api, &pair, &[]);
    assert!(status.success(), "{status}: {logs}");
    assert_eq!(logged_csr(&logs), name);
    openssl(&["verify", "-CAfile", &certs.path("ca.crt"), path(&pair.cert)]);
    assert!(!pending(&pair).exists(), "the pending key became the key");
}

#[test]
fn an_admin_approval_while_waiting_completes_the_bootstrap() {
    let certs = Certs::new();
    let ca = SigningCa::from_dir(certs.dir()).unwrap();
    let api = ApiServer::start().unwrap();
    let pair = Pair::new();
    let cert = pair.cert.to_string_lossy().into_owned();
    let args = bootstrap_args(&api, &pair);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut process = Process::start(BIN, &args, None).unwrap();
    let line = process
        .wait_for_log("waiting for approval", EXIT_LIMIT)
        .unwrap();
    let name = logged_csr(&line);
    api.approve_csr(&name, &ca).unwrap();
    let status = process.wait_exit(EXIT_LIMIT).unwrap();
    assert!(status.success(), "{}", process.logs());
    openssl(&["verify", "-CAfile", &certs.path("ca.crt"), &cert]);
}

#[test]
fn the_running_hub_renews_and_reloads_a_short_lived_certificate() {
    let certs = Certs::new();
    let api = approving_api(&certs);
    let pair = Pair::new();
    let listen = ["--secure-addr", "127.0.0.1:0", "--cert-lifetime", "20s"];
    let (status, logs) = bootstrap(&api, &pair, &listen);
    assert!(status.success(), "{status}: {logs}");
    let first = std::fs::read(&pair.cert).unwrap();

    let cache = tempfile::tempdir().unwrap();
    let hub = HubCommand::new(&api.url(), cache.path())
        .flag("--secure-addr", "127.0.0.1:0")
        .flag("--cert-file", path(&pair.cert))
        .flag("--key-file", path(&pair.key))
        .flag("--node-name", "edge-1")
        .flag("--tls-san", "hub.edge.example,10.0.0.5")
        .flag("--cert-lifetime", "20s");
    let mut args = hub.args();
    args.push("--rotate-server-certificate");
    let mut hub = Process::start(BIN, &args, None).unwrap();
    // 80% of a 22 s lifetime (2 s backdated) comes about 16 s after issue.
    let limit = Duration::from_secs(45);
    hub.wait_for_log("serving certificate renewal scheduled", limit)
        .unwrap();
    hub.wait_for_log("serving certificate renewed", limit)
        .unwrap();
    hub.wait_for_log("serving certificate reloaded", limit)
        .unwrap();
    let renewed = std::fs::read(&pair.cert).unwrap();
    assert_ne!(first, renewed, "the certificate file was not replaced");
    // The listener serves the renewed certificate, without a restart.
    let line = hub.wait_for_log(SECURE_LISTENING, limit).unwrap();
    let addr = listen_addr(&line).unwrap().to_string();
    let served = served_fingerprint(&addr);
    let on_disk = openssl(&["x509", "-in", path(&pair.cert), "-noout", "-fingerprint"]);
    assert_eq!(served, on_disk, "{}", hub.logs());
    assert!(csrs(&api).len() >= 2, "{}", hub.logs());
    openssl(&["verify", "-CAfile", &certs.path("ca.crt"), path(&pair.cert)]);
    assert!(
        !hub.logs().contains("cannot renew"),
        "a renewal failed:\n{}",
        hub.logs()
    );
}
