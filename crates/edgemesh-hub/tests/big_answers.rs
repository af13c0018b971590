//! Issue #18, item 13: a huge list was buffered whole before the client saw a byte (a 400 MB
//! list cost 1.46 GB). Past the buffered size the answer now streams on, the cache keeps its own
//! copy only up to its limit, and a stream cut after the first bytes ends with an error, never a
//! clean end that would make a truncated list look complete. The limits are shrunk here so the
//! lists stay small.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use edgemesh_hub::config::AnswerLimits;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "token-a";

/// Pods whose annotations make each about 1 KiB.
fn add_pods(hub: &LinkedHub, count: usize) {
    let padding = "x".repeat(1000);
    for i in 0..count {
        hub.api
            .apply(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("big-{i:04}"), "namespace": "bulk",
                             "annotations": {"pad": padding}},
                "spec": {"nodeName": "n1"}}))
            .unwrap();
    }
}

async fn hub_with_limits(buffered: usize, cached: usize) -> LinkedHub {
    linked_hub("kubectl", |cfg| {
        cfg.answer_limits = AnswerLimits { buffered, cached };
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_past_the_buffered_size_streams_whole_and_is_cached() {
    let linked = hub_with_limits(16 << 10, 1 << 20).await;
    add_pods(&linked, 300);
    let pods = format!("{}/api/v1/namespaces/bulk/pods", linked.base);
    let (code, body) = get(&pods, "kubectl", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.len() > 300_000, "the list is bigger than the buffer");
    assert_eq!(names(&json(&body)).len(), 300);

    linked.relay.cut();
    wait_online(&linked.hub, false).await;
    let (code, body) = get(&pods, "kubectl", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(names(&json(&body)).len(), 300, "served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_past_the_cache_limit_is_passed_on_but_not_cached() {
    let linked = hub_with_limits(16 << 10, 64 << 10).await;
    // A small list first, so the cache has something that must not be replaced by a part.
    let pods = format!("{}/api/v1/namespaces/bulk/pods", linked.base);
    add_pods(&linked, 10);
    let (code, _) = get(&pods, "kubectl", Some(TOKEN)).await;
    assert_eq!(code, 200);
    add_pods(&linked, 200);
    let (code, body) = get(&pods, "kubectl", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(names(&json(&body)).len(), 200, "the client got all of it");

    linked.relay.cut();
    wait_online(&linked.hub, false).await;
    let (code, body) = get(&pods, "kubectl", Some(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        names(&json(&body)).len(),
        10,
        "the cache kept the last list it could hold"
    );
}

/// An upstream that sends `sent` bytes of a list declared longer, then stalls.
async fn stalling_upstream(sent: usize) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                if !String::from_utf8_lossy(&buf[..n]).starts_with("GET /api/v1/pods") {
                    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                    let _ = stream.write_all(ok.as_bytes()).await;
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    sent * 2
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&vec![b' '; sent]).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stalls_after_the_first_bytes_ends_in_an_error() {
    let upstream = stalling_upstream(64 << 10).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&format!("http://{upstream}"), dir.path(), "kubectl");
    cfg.health.interval = Duration::from_secs(3600);
    cfg.body_stall_timeout = Duration::from_millis(500);
    cfg.answer_limits = AnswerLimits {
        buffered: 16 << 10,
        cached: 1 << 20,
    };
    let hub = start_hub(cfg).await;

    let mut stream = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let request = format!(
        "GET /api/v1/pods HTTP/1.1\r\nhost: hub\r\nuser-agent: kubectl\r\nauthorization: Bearer {TOKEN}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received))
        .await
        .expect("the hub ends the stalled answer");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..80.min(text.len())]
    );
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let body = received.len() - head_end;
    eprintln!("stalled stream: {body} body bytes, then {read:?}");
    assert!(
        body < 128 << 10,
        "the client got fewer bytes than the declared length ({body})"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "no clean end of a chunked body"
    );
}
