//! Issue acceptance (load balancing through the real agent): round robin is exact, random stays
//! within a stated bound, consistent hash keeps a client (source IP or HTTP header) on one
//! backend and moves only the keys of a removed backend, ClientIP affinity sticks and expires.
//!
//! Every curl connection is one pick: the pods answer with their name and close the connection.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datapath_support::{Backend, Cluster, Svc, destination_rule, snapshot_backends, tally};
use serde_json::json;

const IP: &str = "10.96.0.10";
const URL: &str = "http://10.96.0.10/";

/// Three pods behind `web`, with an optional DestinationRule.
fn three_pods(tag: &str, rule: Option<serde_json::Value>) -> Cluster {
    let cluster = Cluster::new(tag, 3);
    let web = Svc::new("web", IP).endpoints(&cluster.pod_ips());
    cluster.apply("web.yaml", &web.yaml());
    if let Some(lb) = rule {
        cluster.apply("web-rule.yaml", &destination_rule("web", lb));
    }
    cluster
}

#[test]
fn agent_round_robin_spreads_requests_exactly() {
    let cluster = three_pods("rr", None);
    let _agent = cluster.start_agent(Backend::Nftables, "");
    let counts = tally(&cluster.curl_many(URL, 30, &[]));
    eprintln!("round robin, 30 requests: {counts:?}");
    let expected: BTreeMap<String, usize> = ["pod-a", "pod-b", "pod-c"]
        .map(|p| (p.to_string(), 10))
        .into();
    assert_eq!(counts, expected);
}

/// Each backend's count is Binomial(300, 1/3): mean 100, sd 8.2. P(count outside [59, 142]) is
/// 2.5e-7 (exact binomial tails), so by the union bound over the 3 backends this test fails by
/// chance with probability < 7.5e-7. [59, 142] is 19.7 %..47.3 % of the requests.
#[test]
fn agent_random_stays_within_a_binomial_bound() {
    let cluster = three_pods("rnd", Some(json!({"simple": "RANDOM"})));
    let _agent = cluster.start_agent(Backend::Nftables, "");
    let counts = tally(&cluster.curl_many(URL, 300, &[]));
    eprintln!("random, 300 requests: {counts:?}");
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (pod, count) in &counts {
        assert!(
            (59..=142).contains(count),
            "{pod} got {count} of 300: {counts:?}"
        );
    }
}

/// `load: 10`: partitions are capped at `ceil(partitionCount / backends × load)` per backend
/// (crates/edgemesh-lb), so with the default 1.25 removing a backend also re-places partitions
/// that had overflowed from one remaining backend to another. A load this high lifts the cap,
/// so the ring alone decides, which is the property the header test checks.
const UNCAPPED_PARTITIONS: &str = "    loadBalancer:\n      consistentHash:\n        load: 10\n";

#[test]
fn agent_consistent_hash_by_source_ip_keeps_each_client_on_one_backend() {
    let rule = json!({"consistentHash": {"useSourceIp": true}});
    let cluster = three_pods("chsrc", Some(rule));
    let clients = ["192.0.2.5", "192.0.2.6", "192.0.2.7", "192.0.2.8"];
    for client in clients {
        cluster.add_node_address(client);
    }
    // The default load: live connections never move a client (EdgeMesh's session persistence).
    let _agent = cluster.start_agent(Backend::Nftables, "");
    for client in clients {
        let counts = tally(&cluster.curl_many(URL, 12, &["--interface", client]));
        eprintln!("source {client}: {counts:?}");
        assert_eq!(
            counts.len(),
            1,
            "client {client} moved between backends: {counts:?}"
        );
    }
}

/// Removing a backend moves only the keys it held (see [`UNCAPPED_PARTITIONS`]).
#[test]
fn agent_consistent_hash_by_header_moves_only_the_removed_backends_keys() {
    let rule = json!({"consistentHash": {"httpHeaderName": "X-User"}});
    let cluster = three_pods("chhdr", Some(rule));
    let agent = cluster.start_agent(Backend::Nftables, UNCAPPED_PARTITIONS);
    let users: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let before = backend_per_user(&cluster, &users);
    assert!(
        before.values().any(|p| p == "pod-c"),
        "no user on pod-c: {before:?}"
    );

    let two = Svc::new("web", IP).endpoints(&cluster.pod_ips()[..2]);
    cluster.apply("web.yaml", &two.yaml());
    agent.wait_snapshot("pod-c removed", Duration::from_secs(2), |s| {
        snapshot_backends(s, "web", 0).len() == 2
    });
    let after = backend_per_user(&cluster, &users);
    let moved: Vec<&String> = users.iter().filter(|u| before[*u] != after[*u]).collect();
    eprintln!(
        "header hash: {} of {} users moved: {moved:?}",
        moved.len(),
        users.len()
    );
    for user in &users {
        match before[user].as_str() {
            "pod-c" => assert_ne!(after[user], "pod-c", "{user}"),
            kept => assert_eq!(after[user], kept, "{user} moved off a backend that stayed"),
        }
    }
}

/// Sends 3 requests per user with its header; they must agree. Returns user → pod.
fn backend_per_user(cluster: &Cluster, users: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for user in users {
        let header = format!("X-User: {user}");
        let counts = tally(&cluster.curl_many(URL, 3, &["-H", &header]));
        assert_eq!(counts.len(), 1, "{user} was spread: {counts:?}");
        out.insert(user.clone(), counts.into_keys().next().unwrap());
    }
    out
}

#[test]
fn agent_client_ip_affinity_sticks_then_expires() {
    let cluster = Cluster::new("aff", 3);
    let web = Svc::new("web", IP)
        .endpoints(&cluster.pod_ips())
        .spec("sessionAffinity", json!("ClientIP"))
        .spec(
            "sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 2}}),
        );
    cluster.apply("web.yaml", &web.yaml());
    let _agent = cluster.start_agent(Backend::Nftables, "");

    let counts = tally(&cluster.curl_many(URL, 15, &[]));
    assert_eq!(counts.len(), 1, "affinity did not stick: {counts:?}");
    let mut current = counts.into_keys().next().unwrap();
    // Idle > timeoutSeconds: the entry expires and the next pick goes by round robin again,
    // which may land on the same pod; over 4 expirations at least one change must show.
    let started = Instant::now();
    for round in 1..=4 {
        std::thread::sleep(Duration::from_millis(2300));
        let next = tally(&cluster.curl_many(URL, 3, &[]));
        assert_eq!(
            next.len(),
            1,
            "affinity did not stick after expiry: {next:?}"
        );
        let next = next.into_keys().next().unwrap();
        eprintln!(
            "expiry {round}: {current} -> {next} ({:?})",
            started.elapsed()
        );
        if next != current {
            return;
        }
        current = next;
    }
    panic!("affinity never expired: always {current} after 4 idle periods of 2.3 s");
}
