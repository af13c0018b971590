//! Watches offline, live cache_agents from the ConfigMap, identity forwarding, and the HTTPS
//! listener's certificate reload.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "t";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_watch_gets_bookmarks_and_ends_when_the_cloud_returns() {
    let api = apiserver();
    let relay = Relay::start(api.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(config(&format!("http://{}", relay.addr), dir.path(), "app")).await;
    let base = format!("http://{}", hub.addr);
    assert_eq!(
        get(
            &format!("{base}/api/v1/namespaces/prod/pods"),
            "app",
            Some(TOKEN)
        )
        .await
        .0,
        200
    );
    relay.cut();
    wait_online(&hub, false).await;

    let url = format!(
        "{base}/api/v1/namespaces/prod/pods?watch=true&allowWatchBookmarks=true&resourceVersion=1"
    );
    let request = http::Request::get(url)
        .header("user-agent", "app")
        .header("authorization", "Bearer t")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("no bookmark")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    let event = json(std::str::from_utf8(&frame).unwrap().trim());
    assert_eq!(event["type"], "BOOKMARK");
    assert_eq!(event["object"]["kind"], "Pod");

    relay.restore().await;
    let started = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("watch not closed")
        {
            None => break,
            Some(Ok(_bookmark)) => assert!(started.elapsed() < Duration::from_secs(5)),
            Some(Err(e)) => panic!("{e}"),
        }
    }
    // A watch of something never listed is refused, not held.
    relay.cut();
    wait_online(&hub, false).await;
    let (code, _) = get(
        &format!("{base}/api/v1/services?watch=true"),
        "app",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_agents_follow_the_config_map_live_and_survive_a_restart() {
    let api = apiserver();
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(config(&api.url(), dir.path(), "")).await;
    let base = format!("http://{}", hub.addr);
    api.apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "edge-hub-cfg", "namespace": "kube-system"},
        "data": {"cache_agents": "edge-app, other"}}))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.status.status().cache_agents_config_map != "edge-app,other" {
        assert!(Instant::now() < deadline, "ConfigMap never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(&format!("{base}/api/v1/pods"), "edge-app", Some(TOKEN))
            .await
            .0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(dir.path().join("edge-app/pods.v1.core/.edgemesh-meta.json"))
        .is_ok_and(|meta| meta.contains("resource_version"))
    {
        assert!(Instant::now() < deadline, "edge-app not cached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(hub);
    // Restarted with the cloud unreachable: the persisted list still applies.
    let offline = start_hub(config("http://127.0.0.1:9", dir.path(), "")).await;
    assert_eq!(
        offline.status.status().cache_agents_config_map,
        "edge-app,other"
    );
    let (code, body) = get(
        &format!("http://{}/api/v1/pods", offline.addr),
        "edge-app",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

/// An upstream that records the request head it gets and answers a fixed JSON object.
async fn recording_upstream() -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = r#"{"kind":"Status","status":"Success"}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = tx.send(head).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_own_credentials_reach_the_upstream_untouched() {
    let (upstream, mut heads) = recording_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&format!("http://{upstream}"), dir.path(), "");
    cfg.health.interval = Duration::from_secs(3600);
    let hub = start_hub(cfg).await;
    let (code, _) = call(
        "POST",
        &format!("http://{}/api/v1/namespaces/a/configmaps", hub.addr),
        "pod-x",
        Some("secret-token"),
        Some("{}"),
    )
    .await;
    assert_eq!(code, 200);
    let head = head_starting_with(&mut heads, "POST /api/v1/namespaces/a/configmaps").await;
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("authorization: bearer secret-token"),
        "{head}"
    );
    assert!(lower.contains("user-agent: pod-x"), "{head}");
}

/// The next request head the recording upstream saw that starts with `prefix` (within 5 s).
async fn head_starting_with(
    heads: &mut tokio::sync::mpsc::Receiver<String>,
    prefix: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let head = tokio::time::timeout(Duration::from_secs(5), heads.recv())
            .await
            .unwrap()
            .unwrap();
        if head.starts_with(prefix) {
            return head;
        }
        assert!(
            Instant::now() < deadline,
            "no request starting with {prefix}"
        );
    }
}

/// Node components on the plain (loopback) front present no credentials: as YurtHub does, the
/// hub sends them upstream with the node's identity (`--token-file`), so `edgemesh agent
/// --master http://127.0.0.1:10261` is not anonymous. A client that brings its own keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_components_on_the_plain_front_are_sent_with_the_node_identity() {
    let (upstream, mut heads) = recording_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "node-token\n").unwrap();
    let mut cfg = config(&format!("http://{upstream}"), dir.path(), "");
    cfg.health.interval = Duration::from_secs(3600);
    cfg.token_file = Some(token.clone());
    let hub = start_hub(cfg).await;
    let mut authorization_of = async |path: &str, own: Option<&str>| {
        let (code, _) = get(&format!("http://{}{path}", hub.addr), "edgemesh-agent", own).await;
        assert_eq!(code, 200);
        let head = head_starting_with(&mut heads, &format!("GET {path} ")).await;
        head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("authorization: ")
                .map(str::to_owned)
        })
    };
    assert_eq!(
        authorization_of("/api/v1/services", None).await.as_deref(),
        Some("bearer node-token")
    );
    assert_eq!(
        authorization_of("/api/v1/endpoints", Some("own-token"))
            .await
            .as_deref(),
        Some("bearer own-token")
    );
    // A rotated token is used from the next request on.
    std::fs::write(&token, "rotated\n").unwrap();
    assert_eq!(
        authorization_of("/api/v1/nodes", None).await.as_deref(),
        Some("bearer rotated")
    );
}

fn issue(ca: &rcgen::Issuer<'_, rcgen::KeyPair>, cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["kubernetes.default.svc".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn served_common_name(addr: std::net::SocketAddr, ca_pem: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("kubernetes.default.svc").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    // The CN is in the DER as UTF8String/PrintableString; find our marker.
    let der = String::from_utf8_lossy(cert.as_ref()).into_owned();
    ["first", "second"]
        .iter()
        .find(|cn| der.contains(&format!("hub-{cn}")))
        .unwrap_or(&"?")
        .to_string()
}

use rustls::pki_types::pem::PemObject;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_certificate_is_reloaded_when_its_files_change() {
    let api = apiserver();
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let (cert_file, key_file) = (dir.path().join("hub.crt"), dir.path().join("hub.key"));
    let (cert, key) = issue(&ca, "hub-first");
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let mut cfg = config(&api.url(), &dir.path().join("cache"), "");
    cfg.secure_addr = Some("127.0.0.1:0".parse().unwrap());
    cfg.insecure_addr = None;
    cfg.cert_file = Some(cert_file.clone());
    cfg.key_file = Some(key_file.clone());
    cfg.cert_poll_interval = Duration::from_millis(100);
    let hub = start_hub(cfg).await;
    assert_eq!(served_common_name(hub.addr, &ca_cert.pem()).await, "first");

    // Written as cert managers do: new files renamed into place.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (cert, key) = issue(&ca, "hub-second");
    std::fs::write(dir.path().join("new.key"), key).unwrap();
    std::fs::write(dir.path().join("new.crt"), cert).unwrap();
    std::fs::rename(dir.path().join("new.key"), &key_file).unwrap();
    std::fs::rename(dir.path().join("new.crt"), &cert_file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_common_name(hub.addr, &ca_cert.pem()).await != "second" {
        assert!(Instant::now() < deadline, "certificate never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An upstream as an apiserver behind an idle-closing load balancer looks at its worst: an
/// upgrade is switched (and then echoed back); any other request is answered and the connection
/// kept alive, but a second request on that connection finds it closed, unanswered.
struct ClosingUpstream {
    addr: std::net::SocketAddr,
    /// Requests answered (upgrades and the first request of each connection).
    answered: Arc<std::sync::atomic::AtomicUsize>,
}

async fn closing_upstream() -> ClosingUpstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&answered);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                for request_on_connection in 1.. {
                    let Some(head) = read_head(&mut stream).await else {
                        return;
                    };
                    let head = head.to_ascii_lowercase();
                    if head.contains("upgrade: spdy/3.1") {
                        let reply = "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: SPDY/3.1\r\n\r\n";
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        stream.write_all(reply.as_bytes()).await.unwrap();
                        let (mut r, mut w) = stream.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                        return;
                    }
                    if request_on_connection > 1 {
                        return; // closed without an answer
                    }
                    let body = r#"{"major":"1","minor":"31"}"#;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    // Counted before the client can see the answer.
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    stream.write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    ClosingUpstream { addr, answered }
}

/// One message head (up to its blank line); `None` when the connection ends first.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A hub over [`closing_upstream`] whose first health probe has been answered, so a kept-alive
/// connection (one that will close on its next request) sits in the hub's pool.
async fn hub_with_a_closing_connection_pooled() -> (ClosingUpstream, TestHub, tempfile::TempDir) {
    let upstream = closing_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&format!("http://{}", upstream.addr), dir.path(), "*");
    cfg.health.interval = Duration::from_secs(3600);
    cfg.config_map = None; // the probe is the hub's only request of its own
    let hub = start_hub(cfg).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.answered.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the hub never probed its upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The probe's connection goes back to the pool once its answer is drained.
    tokio::time::sleep(Duration::from_millis(50)).await;
    (upstream, hub, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_sent_on_a_connection_the_upstream_closed_unanswered_are_sent_again() {
    let (upstream, hub, _dir) = hub_with_a_closing_connection_pooled().await;
    // Each read goes out on the connection the previous request left in the pool, which the
    // upstream closes unanswered: the hub must send it again on a new one, not answer 502.
    for round in 0..3 {
        let (code, body) = get(&format!("http://{}/version", hub.addr), "curl", None).await;
        assert_eq!(code, 200, "round {round}: {body}");
    }
    assert_eq!(
        upstream.answered.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "the probe and the three reads, each on its own connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_such_as_exec_pass_through_both_ways() {
    // A pooled connection that closes on its next request sits in the pool: an upgrade goes out
    // on a new connection of its own (a POST cannot be sent again once a kept-alive connection
    // failed under it; stop 29's CI saw such an exec answered 503).
    let (_upstream, hub, _dir) = hub_with_a_closing_connection_pooled().await;
    let mut stream = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let request = "POST /api/v1/namespaces/a/pods/p/exec?command=sh HTTP/1.1\r\nHost: hub\r\n\
        User-Agent: kubectl/1\r\nAuthorization: Bearer t\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream))
        .await
        .expect("no response head within 5 s")
        .expect("connection closed before the response head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for message in [&b"hello"[..], &b"second frame"[..]] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
}
