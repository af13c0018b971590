//! The gateway in this process on loopback, driven by curl: EdgeMesh's example route, host and
//! path routes, weights, and a broken VirtualService next to a good one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use edgemesh_model::Catalog;
use edgemesh_model::Resource;
use edgemesh_model::ingress::StringMatchSpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edgemesh_example_routes_every_path_to_the_service() {
    let target = free_port();
    backend(([127, 0, 0, 2], target).into(), "pod-a").await;
    backend(([127, 0, 0, 3], target).into(), "pod-b").await;
    let port = free_port();
    let mut catalog = Catalog::new();
    service(
        &mut catalog,
        "hostname-lb-svc",
        [10, 96, 0, 10],
        12345,
        &[[127, 0, 0, 2], [127, 0, 0, 3]],
        target,
    );
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        edgemesh_gateway(port, &["*"], None),
    );
    let vs = virtual_service(
        "edgemesh-gateway-svc",
        &["*"],
        vec![http_route(
            vec![prefix("/")],
            vec![destination("hostname-lb-svc", 12345, 100)],
        )],
    );
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        Resource::VirtualService(Arc::new(vs)),
    );
    let _gw = gateway(snapshot(&catalog, 1)).await;
    let url = format!("http://127.0.0.1:{port}/hello");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let body = tokio::task::spawn_blocking({
            let url = url.clone();
            move || curl(&[&url])
        })
        .await
        .unwrap();
        assert!(
            body.ends_with(&format!(" /hello 127.0.0.1:{port} HTTP/1.1\n")),
            "{body:?}"
        );
        seen.insert(body.split(' ').next().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "both endpoints serve: {seen:?}");
    // HTTP/1.0 without a Host (openssl s_time, probes): the upstream HTTP/1.1 request gets the
    // Service's cluster name, not none (a backend such as nginx answers that with 400).
    let body = tokio::task::spawn_blocking({
        let url = url.clone();
        move || curl(&["--http1.0", "-H", "Host:", &url])
    })
    .await
    .unwrap();
    assert!(
        body.ends_with(" /hello hostname-lb-svc.default.svc.cluster.local:12345 HTTP/1.1\n"),
        "{body:?}"
    );
    // h2c with prior knowledge to a port that does not declare HTTP/2: HTTP/1.1 upstream.
    let body = tokio::task::spawn_blocking({
        let url = url.clone();
        move || curl(&["--http2-prior-knowledge", &url])
    })
    .await
    .unwrap();
    assert!(
        body.ends_with(&format!(" /hello 127.0.0.1:{port} HTTP/1.1\n")),
        "{body:?}"
    );
    // A gRPC request (its content type) goes to the backend as HTTP/2.
    let body = tokio::task::spawn_blocking(move || {
        curl(&[
            "--http2-prior-knowledge",
            "-H",
            "content-type: application/grpc",
            &url,
        ])
    })
    .await
    .unwrap();
    assert!(
        body.ends_with(&format!(" /hello 127.0.0.1:{port} HTTP/2.0\n")),
        "{body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_path_and_header_routes_and_a_broken_virtual_service() {
    let target = free_port();
    backend(([127, 0, 0, 4], target).into(), "who").await;
    backend(([127, 0, 0, 5], target).into(), "other").await;
    backend(([127, 0, 0, 6], target).into(), "header").await;
    let port = free_port();
    let mut catalog = Catalog::new();
    service(
        &mut catalog,
        "who",
        [10, 96, 0, 11],
        80,
        &[[127, 0, 0, 4]],
        target,
    );
    service(
        &mut catalog,
        "other",
        [10, 96, 0, 12],
        80,
        &[[127, 0, 0, 5]],
        target,
    );
    service(
        &mut catalog,
        "header",
        [10, 96, 0, 13],
        80,
        &[[127, 0, 0, 6]],
        target,
    );
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        edgemesh_gateway(port, &["hostname.org", "*.example.com"], None),
    );
    let mut by_header = prefix("/");
    by_header.headers = vec![("x-canary".into(), StringMatchSpec::Exact("yes".into()))];
    let good = virtual_service(
        "good",
        &["hostname.org"],
        vec![
            http_route(vec![by_header], vec![destination("header", 80, 100)]),
            http_route(
                vec![prefix("/who")],
                vec![destination("who.default.svc.cluster.local", 80, 100)],
            ),
        ],
    );
    let second = virtual_service(
        "second",
        &["hostname.org", "*.example.com"],
        vec![http_route(vec![], vec![destination("other", 80, 100)])],
    );
    let mut bad_match = prefix("/");
    bad_match.uri = Some(StringMatchSpec::Regex("(".into()));
    let broken = virtual_service(
        "broken",
        &["*.example.com"],
        vec![http_route(
            vec![bad_match],
            vec![destination("who", 80, 100)],
        )],
    );
    for vs in [good, second, broken] {
        catalog.upsert(
            edgemesh_model::SourceId::Manifests,
            Resource::VirtualService(Arc::new(vs)),
        );
    }
    let gw = gateway(snapshot(&catalog, 1)).await;
    let base = format!("http://127.0.0.1:{port}");
    let get = |path: &str, extra: Vec<String>| {
        let mut args = vec![format!("{base}{path}")];
        args.extend(extra);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&args)
        })
    };
    let host = |h: &str| vec!["-H".to_string(), format!("Host: {h}")];
    assert!(
        get("/whoami", host("hostname.org"))
            .await
            .unwrap()
            .starts_with("who /whoami hostname.org")
    );
    // Not the first VirtualService's: the second one's catch-all serves it.
    assert!(
        get("/else", host("hostname.org"))
            .await
            .unwrap()
            .starts_with("other /else")
    );
    assert!(
        get("/x", host("a.example.com"))
            .await
            .unwrap()
            .starts_with("other /x")
    );
    let mut canary = host("hostname.org");
    canary.extend(["-H".to_string(), "x-canary: yes".to_string()]);
    assert!(
        get("/whoami", canary)
            .await
            .unwrap()
            .starts_with("header /whoami")
    );
    let mut status = host("nothing.org");
    status.extend([
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
    ]);
    assert_eq!(get("/", status).await.unwrap(), "404");
    let problems = &gw.shared.table.load().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].object, "VirtualService default/broken");
    assert!(
        problems[0].message.contains("regex \"(\" does not compile"),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_requests_within_bounds() {
    let target = free_port();
    backend(([127, 0, 0, 7], target).into(), "v1").await;
    backend(([127, 0, 0, 8], target).into(), "v2").await;
    let port = free_port();
    let mut catalog = Catalog::new();
    service(
        &mut catalog,
        "v1",
        [10, 96, 0, 21],
        80,
        &[[127, 0, 0, 7]],
        target,
    );
    service(
        &mut catalog,
        "v2",
        [10, 96, 0, 22],
        80,
        &[[127, 0, 0, 8]],
        target,
    );
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        edgemesh_gateway(port, &["*"], None),
    );
    let vs = virtual_service(
        "split",
        &["*"],
        vec![http_route(
            vec![],
            vec![destination("v1", 80, 80), destination("v2", 80, 20)],
        )],
    );
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        Resource::VirtualService(Arc::new(vs)),
    );
    let _gw = gateway(snapshot(&catalog, 1)).await;
    // One curl, 1,000 keep-alive requests: each is routed on its own.
    let url = format!("http://127.0.0.1:{port}/");
    let body = tokio::task::spawn_blocking(move || {
        let urls: Vec<String> = (0..1000).map(|_| url.clone()).collect();
        let args: Vec<&str> = urls.iter().map(String::as_str).collect();
        curl(&args)
    })
    .await
    .unwrap();
    let v1 = body.lines().filter(|l| l.starts_with("v1 ")).count();
    let v2 = body.lines().filter(|l| l.starts_with("v2 ")).count();
    assert_eq!(v1 + v2, 1000, "every request answered");
    // Binomial(1000, 0.8): sd ≈ 12.6; ±5 sd.
    assert!(
        (737..=863).contains(&v1),
        "v1 got {v1} of 1000 (80% expected)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_match_with_gateways_routes_only_on_their_ports() {
    let target = free_port();
    backend(([127, 0, 0, 9], target).into(), "internal").await;
    backend(([127, 0, 0, 10], target).into(), "public").await;
    let (internal_port, public_port) = (free_port(), free_port());
    let mut catalog = Catalog::new();
    service(
        &mut catalog,
        "internal",
        [10, 96, 0, 23],
        80,
        &[[127, 0, 0, 9]],
        target,
    );
    service(
        &mut catalog,
        "public",
        [10, 96, 0, 24],
        80,
        &[[127, 0, 0, 10]],
        target,
    );
    let Resource::Gateway(mut second) = edgemesh_gateway(public_port, &["*"], None) else {
        unreachable!()
    };
    Arc::make_mut(&mut second).key.name = "public-gateway".into();
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        edgemesh_gateway(internal_port, &["*"], None),
    );
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        Resource::Gateway(second),
    );
    let mut on_internal = prefix("/");
    on_internal.gateways = vec!["edgemesh-gateway".into()];
    let mut vs = virtual_service(
        "both",
        &["*"],
        vec![
            http_route(vec![on_internal], vec![destination("internal", 80, 100)]),
            http_route(vec![], vec![destination("public", 80, 100)]),
        ],
    );
    vs.gateways.push("default/public-gateway".into());
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        Resource::VirtualService(Arc::new(vs)),
    );
    let _gw = gateway(snapshot(&catalog, 1)).await;
    for (port, expected) in [(internal_port, "internal /x"), (public_port, "public /x")] {
        let body =
            tokio::task::spawn_blocking(move || curl(&[&format!("http://127.0.0.1:{port}/x")]))
                .await
                .unwrap();
        assert!(body.starts_with(expected), "port {port}: {body:?}");
    }
}

/// A pod `name` at `ip` labelled `version: VERSION` in namespace default.
fn pod(name: &str, ip: [u8; 4], version: &str) -> Resource {
    Resource::Pod(
        edgemesh_model::PodSpec {
            key: edgemesh_model::ObjectKey::new("default", name),
            ip: Some(std::net::IpAddr::from(ip)),
            labels: [("version".to_string(), version.to_string())].into(),
        }
        .into(),
    )
}

/// Two routes to subsets v1 and v2 of one Service, asked in turn on ONE keep-alive downstream
/// connection to keep-alive backends: each request goes to its own subset's pod, never down the
/// upstream connection the other route's request left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsets_of_one_service_keep_their_own_upstream_connections() {
    let target = free_port();
    backend(([127, 0, 0, 13], target).into(), "v1").await;
    backend(([127, 0, 0, 14], target).into(), "v2").await;
    let port = free_port();
    let mut catalog = Catalog::new();
    let ips = [[127, 0, 0, 13], [127, 0, 0, 14]];
    service(&mut catalog, "web", [10, 96, 0, 23], 80, &ips, target);
    for resource in [
        pod("web-v1", [127, 0, 0, 13], "v1"),
        pod("web-v2", [127, 0, 0, 14], "v2"),
    ] {
        catalog.upsert(edgemesh_model::SourceId::Manifests, resource);
    }
    let subset = |name: &str| edgemesh_model::SubsetSpec {
        name: name.into(),
        labels: [("version".to_string(), name.to_string())].into(),
    };
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        Resource::DestinationRule(
            edgemesh_model::DestinationRuleSpec {
                key: edgemesh_model::ObjectKey::new("default", "web"),
                host: "web".into(),
                policy: edgemesh_model::LbPolicy::default(),
                subsets: vec![subset("v1"), subset("v2")],
            }
            .into(),
        ),
    );
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        edgemesh_gateway(port, &["*"], None),
    );
    let to_subset = |path: &str, name: &str| {
        let mut to = destination("web", 80, 100);
        to.subset = Some(name.into());
        http_route(vec![prefix(path)], vec![to])
    };
    let routes = vec![to_subset("/v1", "v1"), to_subset("/v2", "v2")];
    let vs = virtual_service("web", &["*"], routes);
    catalog.upsert(
        edgemesh_model::SourceId::Manifests,
        Resource::VirtualService(Arc::new(vs)),
    );
    let _gw = gateway(snapshot(&catalog, 1)).await;
    // One curl: 40 keep-alive requests, /v1 and /v2 in turn.
    let urls: Vec<String> = (0..40)
        .map(|i| format!("http://127.0.0.1:{port}/v{}", 1 + i % 2))
        .collect();
    let body = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = urls.iter().map(String::as_str).collect();
        curl(&args)
    })
    .await
    .unwrap();
    let answers: Vec<&str> = body.lines().collect();
    assert_eq!(answers.len(), 40, "{body}");
    for (i, answer) in answers.iter().enumerate() {
        let subset = format!("v{}", 1 + i % 2);
        assert!(
            answer.starts_with(&format!("{subset} /{subset}")),
            "request {i} to /{subset} answered by {answer:?}"
        );
    }
}
