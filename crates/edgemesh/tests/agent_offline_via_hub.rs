//! Issue acceptance (edge hub): an `edgemesh agent` pointed at the hub (`--master`) restarts
//! while the cloud is unreachable and rebuilds its Snapshot from the hub's cache; ClusterIP
//! traffic works. Real agent, real hub, real curl, the test kit's apiserver as the cloud.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

mod common;
mod hub_support;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Agent, backends, service_json, slice_json};
use edgemesh_testkit::netns::Netns;
use edgemesh_testkit::process::Process;
use hub_support::{edge_node_with_api, wait_online};

const HUB: &str = "http://127.0.0.1:10261";

/// A one-line HTTP answer on 192.0.2.11:8080 inside `ns` (the "pod").
fn serve_pod(ns: &Netns) {
    ns.exec_ok("ip", &["addr", "add", "192.0.2.11/32", "dev", "lo"])
        .unwrap();
    let listener = ns
        .run(|| std::net::TcpListener::bind("192.0.2.11:8080"))
        .unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\npod-a");
        }
    });
}

fn curl(ns: &Netns, url: &str) -> String {
    let out = ns.exec("curl", &["-sS", "--max-time", "3", url]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn agent_restarts_offline_from_the_hub_cache() {
    let (ns, api) = edge_node_with_api("hubo");
    serve_pod(&ns);
    api.apply(service_json("shop", "web", "10.96.0.10", 80))
        .unwrap();
    api.apply(slice_json("shop", "web", &["192.0.2.11"], 8080))
        .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let hub_args = [
        "hub",
        "--server-addr",
        &api.url(),
        "--secure-addr",
        "",
        "--cache-dir",
        cache.path().to_str().unwrap(),
        "--cache-agents",
        "edgemesh-agent",
        "--config-map",
        "",
        "--admin-addr",
        "127.0.0.1:0",
        "--heartbeat-interval",
        "200ms",
        "--heartbeat-failed-retry",
        "2",
    ];
    let mut hub = Process::start(env!("CARGO_BIN_EXE_edgemesh"), &hub_args, Some(&ns)).unwrap();
    hub.admin_addr(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("hub: {e}\n{}", hub.logs()));

    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n\
         modules:\n  edgeProxy:\n    enable: true\n",
    )
    .unwrap();
    let args = ["--config", config.path().to_str().unwrap(), "--master", HUB];
    let agent = Agent::start(ns, &args).ready();
    assert_eq!(curl(&agent.netns, "http://10.96.0.10/"), "pod-a");

    // The cloud goes away; the agent restarts with no rules left from its previous life.
    api.set_available(false);
    wait_online(&hub, false);
    let Agent {
        mut process,
        netns: ns,
        ..
    } = agent;
    process.kill().unwrap();
    drop(process);
    ns.exec_ok(env!("CARGO_BIN_EXE_edgemesh"), &["agent", "--cleanup"])
        .unwrap();
    assert_ne!(
        curl(&ns, "http://10.96.0.10/"),
        "pod-a",
        "rules really removed"
    );

    let agent = Agent::start(ns, &args).ready();
    let snapshot = agent.snapshot();
    assert_eq!(
        backends(&snapshot, "shop/web"),
        ["192.0.2.11:8080"],
        "{snapshot}"
    );
    assert_eq!(
        curl(&agent.netns, "http://10.96.0.10/"),
        "pod-a",
        "--- agent:\n{}\n--- hub:\n{}",
        agent.process.logs(),
        hub.logs()
    );
}
