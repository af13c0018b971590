//! The apiserver test double at the wire level: list and watch bodies, 410, bookmarks,
//! discovery, outages and the request log.
// Test helpers: a failed set-up step should panic with its error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::http;
use edgemesh_testkit::netns::{Netns, require_root};
use serde_json::{Value, json};

fn get(server: &ApiServer, path: &str) -> (u16, String) {
    http::get(server.addr(), path, Duration::from_secs(10)).unwrap()
}

fn get_json(server: &ApiServer, path: &str) -> (u16, Value) {
    let (status, body) = get(server, path);
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

/// Watch events of a stream that ends by itself (timeoutSeconds, or an ERROR).
fn watch_events(server: &ApiServer, path: &str) -> Vec<Value> {
    let (status, body) = get(server, path);
    assert_eq!(status, 200, "{body}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn svc(name: &str, ns: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": {"app": app}}})
}

#[test]
fn list_has_upstream_shape_and_honours_selectors() {
    let server = ApiServer::start().unwrap();
    server.apply(svc("a", "prod", "web")).unwrap();
    server.apply(svc("b", "prod", "db")).unwrap();
    server.apply(svc("c", "dev", "web")).unwrap();
    let (status, list) = get_json(&server, "/api/v1/services");
    assert_eq!(status, 200);
    assert_eq!(
        (list["kind"].as_str(), list["apiVersion"].as_str()),
        (Some("ServiceList"), Some("v1"))
    );
    assert_eq!(
        list["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items[0].get("kind").is_none(),
        "built-in list items carry no kind"
    );

    let names = |path: &str| -> Vec<String> {
        let (_, list) = get_json(&server, path);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("/api/v1/namespaces/prod/services"), ["a", "b"]);
    assert_eq!(
        names("/api/v1/services?labelSelector=app%3Dweb"),
        ["c", "a"]
    );
    assert_eq!(
        names("/api/v1/services?labelSelector=app+in+%28db%29"),
        ["b"]
    );
    assert_eq!(
        names("/api/v1/services?fieldSelector=metadata.namespace%3Ddev"),
        ["c"]
    );
    assert_eq!(
        names("/api/v1/services?fieldSelector=metadata.name!%3Da&limit=500"),
        ["c", "b"]
    );
    let (status, err) = get_json(&server, "/api/v1/services?fieldSelector=spec.clusterIP%3Dx");
    assert_eq!((status, err["reason"].as_str()), (400, Some("BadRequest")));
}

#[test]
fn get_one_and_not_found_status() {
    let server = ApiServer::start().unwrap();
    let stored = server.apply(svc("a", "prod", "web")).unwrap();
    let (status, obj) = get_json(&server, "/api/v1/namespaces/prod/services/a");
    assert_eq!(status, 200);
    assert_eq!(obj, stored);
    assert_eq!(obj["kind"], "Service");
    let (status, err) = get_json(&server, "/api/v1/namespaces/prod/services/zz");
    assert_eq!(status, 404);
    assert_eq!(
        (
            err["kind"].as_str(),
            err["reason"].as_str(),
            err["code"].as_u64()
        ),
        (Some("Status"), Some("NotFound"), Some(404))
    );
    server.apply(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "edge-1", "namespace": "ignored"}})).unwrap();
    let (status, node) = get_json(&server, "/api/v1/nodes/edge-1");
    assert_eq!(status, 200);
    assert!(node["metadata"].get("namespace").is_none());
}

#[test]
fn watch_from_zero_sends_synthetic_added_then_a_bookmark() {
    let server = ApiServer::start().unwrap();
    server.apply(svc("a", "prod", "web")).unwrap();
    let events = watch_events(
        &server,
        "/api/v1/services?watch=1&allowWatchBookmarks=true&timeoutSeconds=1",
    );
    assert_eq!(types(&events), ["ADDED", "BOOKMARK"]);
    assert_eq!(events[0]["object"]["kind"], "Service");
    assert_eq!(
        events[1]["object"]["metadata"]["resourceVersion"],
        server.resource_version().to_string()
    );
}

#[test]
fn watch_resumes_strictly_after_the_given_version() {
    let server = ApiServer::start().unwrap();
    let first = server.apply(svc("a", "prod", "web")).unwrap();
    server.apply(svc("b", "prod", "web")).unwrap();
    server.delete("v1", "Service", "prod", "a").unwrap();
    let rv = first["metadata"]["resourceVersion"].as_str().unwrap();
    let events = watch_events(
        &server,
        &format!("/api/v1/services?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
    );
    assert_eq!(types(&events), ["ADDED", "DELETED"]);
    assert_eq!(events[1]["object"]["metadata"]["name"], "a");
}

#[test]
fn watch_from_before_compaction_gets_410_expired() {
    let server = ApiServer::start().unwrap();
    let old = server.apply(svc("a", "prod", "web")).unwrap();
    server.compact();
    let rv = old["metadata"]["resourceVersion"].as_str().unwrap();
    let events = watch_events(
        &server,
        &format!("/api/v1/services?watch=true&resourceVersion={rv}"),
    );
    assert_eq!(types(&events), ["ERROR"]);
    let status = &events[0]["object"];
    assert_eq!(
        (
            status["kind"].as_str(),
            status["code"].as_u64(),
            status["reason"].as_str()
        ),
        (Some("Status"), Some(410), Some("Expired"))
    );
    // A fresh list gives a version one can watch from again.
    let (_, list) = get_json(&server, "/api/v1/services");
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let events = watch_events(
        &server,
        &format!("/api/v1/services?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
    );
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn watch_list_streams_initial_events_and_marks_their_end() {
    let server = ApiServer::start().unwrap();
    server.apply(svc("a", "prod", "web")).unwrap();
    let events = watch_events(
        &server,
        "/api/v1/services?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
    );
    assert_eq!(types(&events), ["ADDED", "BOOKMARK"]);
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[test]
fn istio_objects_are_served_in_both_versions() {
    let server = ApiServer::start().unwrap();
    server
        .apply(
            json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule",
                      "metadata": {"name": "r", "namespace": "prod"}, "spec": {"host": "web"}}),
        )
        .unwrap();
    for version in ["v1beta1", "v1alpha3"] {
        let (status, list) = get_json(
            &server,
            &format!("/apis/networking.istio.io/{version}/destinationrules"),
        );
        assert_eq!(status, 200);
        assert_eq!(
            list["items"][0]["apiVersion"],
            format!("networking.istio.io/{version}"),
            "CRD items keep their type"
        );
    }
}

#[test]
fn unserved_groups_are_404_everywhere() {
    let server = ApiServer::builder()
        .istio(false)
        .endpointslices(false)
        .start()
        .unwrap();
    for path in [
        "/apis/networking.istio.io/v1beta1/destinationrules",
        "/apis/networking.istio.io/v1beta1",
        "/apis/networking.istio.io",
        "/apis/discovery.k8s.io/v1/endpointslices",
        "/apis/discovery.k8s.io/v1",
    ] {
        assert_eq!(get(&server, path).0, 404, "{path}");
    }
    let (_, groups) = get_json(&server, "/apis");
    assert!(!groups.to_string().contains("istio"));
    assert!(server.apply(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "x"}})).is_err());
}

#[test]
fn discovery_documents_describe_the_served_resources() {
    let server = ApiServer::start().unwrap();
    let (_, core) = get_json(&server, "/api/v1");
    let names: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for want in [
        "services",
        "endpoints",
        "nodes",
        "pods",
        "configmaps",
        "secrets",
        "namespaces",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let (_, api) = get_json(&server, "/api");
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, group) = get_json(&server, "/apis/networking.istio.io");
    assert_eq!(group["preferredVersion"]["version"], "v1beta1");
    let (status, version) = get_json(&server, "/version");
    assert_eq!((status, version["major"].as_str()), (200, Some("1")));
}

#[test]
fn outage_answers_503_and_requests_are_logged() {
    let server = ApiServer::start().unwrap();
    get(&server, "/api/v1/pods?labelSelector=a%3Db");
    server.set_available(false);
    let (status, body) = get_json(&server, "/api/v1/pods");
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("ServiceUnavailable"))
    );
    server.set_available(true);
    assert_eq!(get(&server, "/api/v1/pods").0, 200);
    assert_eq!(
        server.requests(),
        [
            "GET /api/v1/pods?labelSelector=a%3Db",
            "GET /api/v1/pods",
            "GET /api/v1/pods"
        ]
    );
}

#[test]
fn netns_apiserver_serves_from_a_listener_inside_a_namespace() {
    require_root();
    let ns = Netns::new("api").unwrap();
    let listener = ns.run(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let server = ApiServer::from_listener(listener).unwrap();
    server.apply(svc("a", "prod", "web")).unwrap();
    let addr = server.addr();
    let (status, body) = ns.run(|| {
        http::get(
            addr,
            "/api/v1/namespaces/prod/services/a",
            Duration::from_secs(5),
        )
        .unwrap()
    });
    assert_eq!(status, 200, "{body}");
}

#[test]
fn list_pages_with_limit_and_continue_like_upstream() {
    let server = ApiServer::start().unwrap();
    for i in 0..5 {
        server.apply(svc(&format!("s{i}"), "ns", "a")).unwrap();
    }
    let (_, first) = get_json(&server, "/api/v1/services?limit=2");
    let rv = first["metadata"]["resourceVersion"].clone();
    let mut names: Vec<String> = Vec::new();
    let mut page = first;
    for _ in 0..5 {
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        assert_eq!(
            page["metadata"]["resourceVersion"], rv,
            "continued pages keep the list's version"
        );
        let Some(token) = page["metadata"]["continue"].as_str() else {
            break;
        };
        assert!(page["items"].as_array().unwrap().len() == 2);
        page = get_json(
            &server,
            &format!("/api/v1/services?limit=2&continue={token}"),
        )
        .1;
    }
    assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
    let (status, _) = get(&server, "/api/v1/services?limit=2&continue=garbage");
    assert_eq!(status, 400);
}
