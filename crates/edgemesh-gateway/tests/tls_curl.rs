//! EdgeMesh's MUTUAL example as users run it: an `openssl req -x509` pair in the Secret (no
//! ca.crt), the example's cipher list on TLS 1.2 only, and curl presenting that same pair.
//! Needs `openssl` and `curl` on the PATH (the test fails without them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use edgemesh_gateway::tls::{Terminator, terminator};
use edgemesh_model::ObjectKey;
use edgemesh_model::ingress::{ServerTls, TlsMode, TlsSecretSpec, TlsVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const EDGEMESH_CIPHERS: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=gw` into `dir/NAME.crt`, `dir/NAME.key`.
fn openssl_pair(dir: &Path, name: &str) {
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=gw", "-days", "1",
        ])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ])
        .current_dir(dir)
        .output()
        .expect("openssl must be installed for this test");
    assert!(status.status.success(), "openssl: {status:?}");
}

fn edgemesh_example(dir: &Path) -> Terminator {
    let read = |file: &str| Some(Arc::from(std::fs::read(dir.join(file)).unwrap()));
    let secret = TlsSecretSpec {
        key: ObjectKey::new("istio-system", "gw-secret"),
        cert_pem: read("tls.crt"),
        key_pem: read("tls.key"),
        ca_pem: None,
    };
    let settings = ServerTls {
        mode: TlsMode::Mutual,
        credential_name: Some("gw-secret".into()),
        min_version: Some(TlsVersion::V1_2),
        max_version: Some(TlsVersion::V1_2),
        cipher_suites: EDGEMESH_CIPHERS.iter().map(|s| s.to_string()).collect(),
        https_redirect: false,
    };
    terminator(&settings, &secret, None, &[b"http/1.1"]).unwrap()
}

/// Answers every request on every connection with `ok`.
async fn serve(listener: TcpListener, server: Terminator) {
    let acceptor = tokio_rustls::TlsAcceptor::from(server.config);
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
            let _ = tls.write_all(answer).await;
            let _ = tls.shutdown().await;
        });
    }
}

/// curl's exit status and body.
async fn curl(dir: &Path, port: u16, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "--max-time", "10"])
        .args(args)
        .arg(format!("https://127.0.0.1:{port}/"))
        .current_dir(dir)
        .output()
        .await
        .expect("curl must be installed for this test");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn curl_with_the_secrets_own_pair_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    openssl_pair(dir.path(), "tls");
    openssl_pair(dir.path(), "other");
    let server = edgemesh_example(dir.path());
    // rustls has no CBC suites: each of the example's is named and skipped, the rest serve.
    let mut expected = vec![
        "MUTUAL without ca.crt: only the Secret's own certificate is accepted as a client certificate"
            .to_string(),
    ];
    expected.extend(
        EDGEMESH_CIPHERS
            .iter()
            .filter(|n| n.contains("CBC"))
            .map(|name| {
                format!("cipher suite {name} is not supported (rustls has no CBC suites); skipped")
            }),
    );
    let mut warnings = server.warnings.clone();
    warnings.sort();
    expected.sort();
    assert_eq!(warnings, expected);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve(listener, server));

    let tls12 = ["--tlsv1.2", "--tls-max", "1.2"];
    let own = ["--cert", "tls.crt", "--key", "tls.key"];
    let answer = curl(dir.path(), port, &[&tls12[..], &own[..]].concat()).await;
    assert_eq!(answer, (true, "ok".to_string()));

    let other = ["--cert", "other.crt", "--key", "other.key"];
    let refused = curl(dir.path(), port, &[&tls12[..], &other[..]].concat()).await;
    assert!(!refused.0, "another certificate got through: {refused:?}");
    let refused = curl(dir.path(), port, &tls12).await;
    assert!(!refused.0, "no certificate got through: {refused:?}");
    let refused = curl(dir.path(), port, &[&["--tlsv1.3"][..], &own[..]].concat()).await;
    assert!(
        !refused.0,
        "TLS 1.3 got through a TLS 1.2 only server: {refused:?}"
    );
}
