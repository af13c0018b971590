//! Issue acceptance: a real `edgemesh agent` against the apiserver test double.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod common;

use std::time::Duration;

use common::{Agent, backends, has_service, netns, service_json, slice_json};
use edgemesh_testkit::apiserver::ApiServer;

const WITHIN: Duration = Duration::from_secs(1);
/// A cut or expired watch is re-established at once (source/api/retry.rs).
const RECONNECT: Duration = Duration::from_secs(5);

#[test]
fn agent_follows_the_api_through_changes_cuts_and_410() {
    let ns = netns("disc");
    let api = common::api_without_bookmarks(&ns);
    api.apply(service_json("shop", "web", "10.96.0.10", 80))
        .unwrap();
    api.apply(slice_json("shop", "web", &["192.0.2.1"], 8080))
        .unwrap();
    let agent = Agent::start(ns, &["--master", &api.url()]).ready();
    assert_eq!(backends(&agent.snapshot(), "shop/web"), ["192.0.2.1:8080"]);

    api.apply(slice_json("shop", "web", &["192.0.2.2"], 8080))
        .unwrap();
    let took = agent.wait_snapshot(WITHIN, "endpoint change", |s| {
        backends(s, "shop/web") == ["192.0.2.2:8080"]
    });
    eprintln!("endpoint change visible after {took:?}");

    // A cut watch is resumed from its resourceVersion: the change made while it was down arrives.
    api.cut_watches();
    api.apply(service_json("shop", "cart", "10.96.0.11", 80))
        .unwrap();
    agent.wait_snapshot(RECONNECT, "change across a cut watch", |s| {
        has_service(s, "shop/cart")
    });

    // Too old a resourceVersion after compaction → 410 Gone → the agent relists and goes on.
    let lists_before = list_requests(&api);
    api.compact();
    api.cut_watches();
    api.apply(service_json("shop", "pay", "10.96.0.12", 80))
        .unwrap();
    agent.wait_snapshot(RECONNECT, "change after 410", |s| {
        has_service(s, "shop/pay")
    });
    assert!(
        list_requests(&api) > lists_before,
        "a 410 must lead to a relist: {:?}",
        api.requests()
    );

    api.delete("v1", "Service", "shop", "web").unwrap();
    let took = agent.wait_snapshot(WITHIN, "service deletion", |s| !has_service(s, "shop/web"));
    eprintln!("service deletion visible after {took:?}");
    assert!(
        has_service(&agent.snapshot(), "shop/cart"),
        "other services are untouched"
    );
}

fn list_requests(api: &ApiServer) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/services") && !r.contains("watch="))
        .count()
}

#[test]
fn agent_falls_back_to_endpoints_and_runs_without_istio() {
    let ns = netns("old");
    let api = ApiServer::builder()
        .endpointslices(false)
        .istio(false)
        .start_in(&ns)
        .unwrap();
    api.apply(service_json("shop", "web", "10.96.0.10", 80))
        .unwrap();
    api.apply(serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [{"addresses": [{"ip": "192.0.2.7"}], "ports": [{"name": "http", "port": 8080}]}]
    }))
    .unwrap();
    let agent = Agent::start(ns, &["--master", &api.url()]).ready();
    assert_eq!(backends(&agent.snapshot(), "shop/web"), ["192.0.2.7:8080"]);
    let logs = agent.logs();
    assert!(logs.contains("watching core Endpoints"), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains("Istio CRD not installed") && l.contains("kind=DestinationRule")),
        "{logs}"
    );
}

#[test]
fn agent_reads_destination_rules_and_skips_bad_objects() {
    let ns = netns("dr");
    let api = ApiServer::builder().start_in(&ns).unwrap();
    api.apply(service_json("shop", "web", "10.96.0.10", 80))
        .unwrap();
    api.apply(service_json("shop", "odd", "10.96.0.13", 80))
        .unwrap();
    let mut broken = service_json("shop", "broken", "10.96.0.14", 80);
    broken["spec"]["ports"] = serde_json::json!([]);
    api.apply(broken).unwrap();
    let rule = |name: &str, lb: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"host": name, "trafficPolicy": {"loadBalancer": lb}}
        })
    };
    api.apply(rule(
        "web",
        serde_json::json!({"consistentHash": {"httpHeaderName": "X-User"}}),
    ))
    .unwrap();
    api.apply(rule("odd", serde_json::json!({"simple": "LEAST_CONN"})))
        .unwrap();
    let agent = Agent::start(ns, &["--master", &api.url()]).ready();
    let snapshot = agent.snapshot();
    assert_eq!(
        snapshot["services"]["shop/web"]["lbPolicy"]["consistentHash"]["httpHeader"],
        "x-user"
    );
    assert_eq!(
        snapshot["services"]["shop/odd"]["lbPolicy"], "roundRobin",
        "bad rule ignored"
    );
    assert!(!has_service(&snapshot, "shop/broken"));
    let logs = agent.logs();
    assert!(
        logs.contains("Service shop/broken: spec.ports is empty"),
        "{logs}"
    );
    assert!(logs.contains("DestinationRule shop/odd"), "{logs}");
}
