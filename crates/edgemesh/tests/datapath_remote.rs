//! Issue acceptance (an endpoint on another node while no tunnel exists): every endpoint is
//! dialed directly; an unreachable one makes that client connection fail cleanly (reset) in
//! bounded time, the agent stays healthy and keeps serving, and a service with one unreachable
//! and one reachable endpoint still answers every request (the proxy retries another endpoint).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use std::time::{Duration, Instant};

use datapath_support::{Backend, Cluster, Svc, tally};

const WEB: &str = "10.96.0.10";
const FAR: &str = "10.96.0.20";
const MIXED: &str = "10.96.0.21";
const BLACKHOLE: &str = "10.96.0.22";

/// Runs curl against `ip`, expecting a clean failure; returns how long it took.
fn fails_cleanly(cluster: &Cluster, ip: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let answer = cluster.curl(&format!("http://{ip}/"), &["--max-time", "8"]);
    let took = started.elapsed();
    eprintln!("{ip}: {answer:?} after {took:?}");
    let error = answer.expect_err("an unreachable endpoint answered");
    // The proxy accepts, fails to dial, and resets: curl reports 56 (reset while receiving),
    // 52 (empty reply) or 7 (the reset arrived before curl saw its connect complete); never
    // 28 (timeout: the client hung).
    let clean = ["(7)", "(52)", "(56)"]
        .iter()
        .any(|code| error.contains(code));
    assert!(clean, "{error}");
    assert!(took < within, "took {took:?}");
    took
}

#[test]
fn agent_endpoint_on_another_node_without_tunnel_fails_cleanly() {
    let cluster = Cluster::new("far", 1);
    // 203.0.113.0/24 has no route (connect fails at once); 198.51.100.0/24 is routed to a
    // gateway that does not exist (ARP fails: EHOSTUNREACH after ~3 s, the kernel's timing).
    cluster
        .node
        .exec_ok(
            "ip",
            &["route", "add", "198.51.100.0/24", "via", "192.0.2.254"],
        )
        .unwrap();
    let pod = cluster.pod_ips();
    cluster.apply("web.yaml", &Svc::new("web", WEB).endpoints(&pod).yaml());
    let far = Svc::new("far", FAR).remote_endpoint("203.0.113.7", "node-b");
    cluster.apply("far.yaml", &far.yaml());
    let mixed = Svc::new("mixed", MIXED)
        .remote_endpoint("203.0.113.8", "node-b")
        .endpoints(&pod);
    cluster.apply("mixed.yaml", &mixed.yaml());
    let hole = Svc::new("hole", BLACKHOLE).remote_endpoint("198.51.100.9", "node-c");
    cluster.apply("hole.yaml", &hole.yaml());
    let agent = cluster.start_agent(Backend::Nftables, "");

    fails_cleanly(&cluster, FAR, Duration::from_secs(1));
    fails_cleanly(&cluster, BLACKHOLE, Duration::from_secs(7));
    assert!(agent.metric("edgemesh_proxy_dial_failures_total") >= 2.0);

    assert_eq!(agent.get("/healthz").0, 200);
    assert_eq!(
        cluster.curl(&format!("http://{WEB}/"), &[]).as_deref(),
        Ok("pod-a")
    );
    // Round robin alternates, so about half the picks hit the unreachable endpoint first.
    let counts = tally(&cluster.curl_many(&format!("http://{MIXED}/"), 10, &[]));
    assert_eq!(counts.get("pod-a"), Some(&10), "{counts:?}");
    let retries = agent.metric("edgemesh_proxy_dial_retries_total");
    eprintln!("mixed: {counts:?}, dial retries {retries}");
    assert!(retries >= 1.0);
    assert_eq!(agent.get("/healthz").0, 200);
}
