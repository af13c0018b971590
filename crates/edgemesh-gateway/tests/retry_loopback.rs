//! `retries` on loopback, driven by curl: a Service with one endpoint answering 503 and one
//! answering 200; with `retryOn: 5xx` every request succeeds, without `retries` (Istio's
//! default, which does not retry a 503) some fail, and a streamed body is never replayed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use edgemesh_model::ingress::RetriesSpec;
use edgemesh_model::{Catalog, Resource, SourceId};
use http_body_util::{BodyExt as _, Full};

/// An HTTP/1.1 backend answering every request with `status` and `name <request body>`,
/// after `delay`.
async fn echo_backend(addr: SocketAddr, name: &'static str, status: u16, delay: Duration) {
    serve_http(addr, move |request| async move {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        tokio::time::sleep(delay).await;
        let text = format!("{name} {}", String::from_utf8_lossy(&body));
        let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        response
    })
    .await;
}

/// How an echo endpoint answers: its name, status and delay.
type Answers = (&'static str, u16, Duration);

/// Service `name` (ClusterIP 10.96.0.`ip`, port 80) whose two endpoints, 127.0.0.`hosts[0]`
/// and 127.0.0.`hosts[1]`, answer as `first` and `second` say, behind a gateway on every host:
/// the gateway's port and the catalog to add routes to.
async fn two_endpoint_service(
    name: &str,
    ip: u8,
    hosts: [u8; 2],
    first: Answers,
    second: Answers,
) -> (u16, Catalog) {
    let target = free_port();
    for (host, (answer_as, status, delay)) in hosts.into_iter().zip([first, second]) {
        echo_backend(([127, 0, 0, host], target).into(), answer_as, status, delay).await;
    }
    let port = free_port();
    let mut catalog = Catalog::new();
    let endpoints = hosts.map(|host| [127, 0, 0, host]);
    service(&mut catalog, name, [10, 96, 0, ip], 80, &endpoints, target);
    catalog.upsert(SourceId::Manifests, edgemesh_gateway(port, &["*"], None));
    (port, catalog)
}

/// `count` curl POSTs of `hello` to `url` (`extra` arguments added): their status codes
/// and bodies.
async fn post(url: String, extra: &'static [&'static str], count: usize) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|_| {
                let mut args = vec![url.as_str(), "-d", "hello", "-w", " %{http_code}"];
                args.extend_from_slice(extra);
                curl(&args)
            })
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_move_a_failed_request_to_another_endpoint() {
    let (port, mut catalog) = two_endpoint_service(
        "flaky",
        50,
        [21, 22],
        ("broken", 503, Duration::ZERO),
        ("good", 200, Duration::ZERO),
    )
    .await;
    let mut retried = http_route(
        vec![prefix("/retried")],
        vec![destination("flaky", 80, 100)],
    );
    retried.retries = Some(RetriesSpec {
        attempts: 2,
        per_try_timeout: None,
        retry_on: Some("5xx".into()),
    });
    let plain = http_route(vec![prefix("/plain")], vec![destination("flaky", 80, 100)]);
    let vs = virtual_service("flaky", &["*"], vec![retried, plain]);
    catalog.upsert(SourceId::Manifests, Resource::VirtualService(Arc::new(vs)));
    let gw = gateway(snapshot(&catalog, 1)).await;
    let base = format!("http://127.0.0.1:{port}");
    let retries = || {
        let route = "default/flaky#0".to_string();
        let labels = edgemesh_gateway::metrics::RouteLabels { route };
        gw.shared.metrics.retries.get_or_create(&labels).get()
    };

    let answers = post(format!("{base}/retried"), &[], 20).await;
    assert!(
        answers.iter().all(|a| a == "good hello 200"),
        "every request is retried on the good endpoint: {answers:?}"
    );
    let retried = retries();
    assert!(
        (1..=20).contains(&retried),
        "at most one retry per request, to the good endpoint: {retried}"
    );

    let answers = post(format!("{base}/plain"), &[], 20).await;
    assert!(
        answers.contains(&"broken hello 503".to_string())
            && answers.contains(&"good hello 200".to_string()),
        "without retries the broken endpoint's 503 reaches the client: {answers:?}"
    );

    // A body without a length is streamed to the first endpoint, and not replayed.
    let chunked: &[&str] = &["-H", "Transfer-Encoding: chunked"];
    let answers = post(format!("{base}/retried"), chunked, 20).await;
    assert!(
        answers.contains(&"broken hello 503".to_string()),
        "a streamed body is never retried: {answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_past_per_try_timeout_is_retried_elsewhere() {
    let slow = Duration::from_secs(5);
    let (port, mut catalog) = two_endpoint_service(
        "sluggish",
        51,
        [23, 24],
        ("slow", 200, slow),
        ("quick", 200, Duration::ZERO),
    )
    .await;
    let mut route = http_route(vec![], vec![destination("sluggish", 80, 100)]);
    route.retries = Some(RetriesSpec {
        attempts: 1,
        per_try_timeout: Some(Duration::from_millis(200)),
        retry_on: Some("gateway-error".into()),
    });
    let vs = virtual_service("sluggish", &["*"], vec![route]);
    catalog.upsert(SourceId::Manifests, Resource::VirtualService(Arc::new(vs)));
    let _gw = gateway(snapshot(&catalog, 1)).await;
    let started = Instant::now();
    let answers = post(format!("http://127.0.0.1:{port}/"), &[], 6).await;
    assert!(
        answers.iter().all(|a| a == "quick hello 200"),
        "{answers:?}"
    );
    assert!(
        started.elapsed() < slow,
        "no answer waited for the slow endpoint: {:?}",
        started.elapsed()
    );
}
