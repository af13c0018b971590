//! Discovery figures: a release `edgemesh agent` watching the apiserver test double loaded with
//! N Services (each with an EndpointSlice of 3 endpoints), in a network namespace of its own.
//! Prints time to ready, the agent's RSS and high-water mark once ready, and how fast a change
//! shows up in a newly published Snapshot.
//!
//! Run with `scripts/bench-discovery.sh` (root).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver: failures should panic

use std::net::TcpListener;
use std::time::{Duration, Instant};

use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::{Process, edgemesh_bin};
use serde_json::json;

fn main() {
    require_root();
    println!(
        "| services | endpoints | modules | ready after | RSS | peak RSS | one change visible after |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|");
    for (services, modules) in [
        (1_000, "discovery only"),
        (10_000, "discovery only"),
        (10_000, "proxy + DNS (defaults)"),
    ] {
        measure(services, modules);
    }
}

fn measure(services: u32, modules: &str) {
    let ns = Netns::new("bench").unwrap();
    let listener = ns.run(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let api = ApiServer::from_listener(listener).unwrap();
    for i in 0..services {
        api.apply(service(i)).unwrap();
        api.apply(slice(i, 0)).unwrap();
    }
    let config = tempfile::NamedTempFile::new().unwrap();
    let disabled = "modules:\n  edgeProxy: {enable: false}\n  edgeDNS: {enable: false}\n";
    let body = if modules == "discovery only" {
        disabled
    } else {
        ""
    };
    std::fs::write(
        config.path(),
        format!(
            "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n{body}"
        ),
    )
    .unwrap();
    let url = api.url();
    let args = [
        "agent",
        "--config",
        config.path().to_str().unwrap(),
        "--master",
        &url,
        "--admin-addr",
        "127.0.0.1:0",
        "--node-name",
        "bench",
        "--log-level",
        "warn,edgemesh::agent=info",
    ];
    let started = Instant::now();
    let mut agent = Process::start(edgemesh_bin().unwrap(), &args, Some(&ns)).unwrap();
    agent
        .wait_ready(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.logs()));
    let ready = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    // Steady state, before anything asks for /debug/snapshot (which renders the whole snapshot
    // as JSON: ~17 MB transient for 10,000 services).
    let (rss, hwm) = memory(agent.pid());
    let version = snapshot_version(&agent);
    let changed = Instant::now();
    api.apply(slice(0, 1)).unwrap();
    while snapshot_version(&agent) == version {
        assert!(
            changed.elapsed() < Duration::from_secs(30),
            "change never visible"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let change = changed.elapsed();
    let (_, body) = agent.http_get("/debug/snapshot").unwrap();
    assert!(
        body.contains("192.0.2.250"),
        "the change is in the published snapshot"
    );
    println!(
        "| {services} | {} | {modules} | {:.2} s | {:.1} MiB | {:.1} MiB | {:.0} ms |",
        services * 3,
        ready.as_secs_f64(),
        rss,
        hwm,
        change.as_secs_f64() * 1e3
    );
    agent.terminate(Duration::from_secs(60)).unwrap();
}

fn snapshot_version(agent: &Process) -> String {
    let (_, metrics) = agent.http_get("/metrics").unwrap();
    metrics
        .lines()
        .find(|l| l.starts_with("edgemesh_snapshot_version "))
        .unwrap_or_default()
        .to_string()
}

/// VmRSS and VmHWM of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let mib = |field| {
        edgemesh_telemetry::status_bytes(pid, field).unwrap_or(0) as f64 / f64::from(1 << 20)
    };
    (mib("VmRSS"), mib("VmHWM"))
}

fn service(i: u32) -> serde_json::Value {
    let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
           "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}})
}

fn slice(i: u32, generation: u32) -> serde_json::Value {
    let ip = |j: u32| {
        if generation > 0 && j == 0 {
            "192.0.2.250".to_string()
        } else {
            let n = i * 3 + j;
            format!("10.{}.{}.{}", 128 + n / 65_536, (n / 256) % 256, n % 256)
        }
    };
    let endpoints: Vec<_> = (0..3)
        .map(|j| json!({"addresses": [ip(j)], "nodeName": format!("node-{}", j)}))
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("svc-{i}-x"), "namespace": "bench",
                        "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints})
}
