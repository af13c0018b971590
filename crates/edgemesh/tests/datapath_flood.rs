//! Issue #17, item 3, through the real agent: 20,000 UDP source ports and 5,000 idle TCP
//! connections leave the node serving new connections. Before the limits, 15,500 UDP source
//! ports made 9,986 sessions and `Too many open files` in the proxy's accept, the admin endpoint
//! and the manifests watcher, and 3,328 idle proxied TCP connections did the same.
//! (`edgemesh-proxy`'s `netns_udp_port_flood_and_idle_tcp_connections_leave_the_proxy_serving`
//! drives the proxy library the same way and also checks the keepalive timers with `ss`.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use std::collections::HashMap;
use std::time::Duration;

use datapath_support::{Backend, Cluster, ECHO, PYTHON, Svc, UDP};

const IP: &str = "10.96.0.10";
const FLOOD: &str = include_str!("datapath_support/flood.py");
const IDLE_TCP: usize = 5_000;
const UDP_PORTS: usize = 20_000;
/// The agent's `maxUdpSessions`: far below the flood, so the table must evict to admit flows.
const SESSION_CAP: usize = 1_000;

#[test]
fn udp_port_flood_and_idle_tcp_connections_leave_the_agent_serving() {
    let cluster = Cluster::new("flood", 1);
    let web = Svc::new("web", IP)
        .ports(&[ECHO, UDP])
        .endpoints(&cluster.pod_ips());
    cluster.apply("web.yaml", &web.yaml());
    // The userspace proxy carries TCP too (the kernel fast path would hold no fd for it).
    let extra = format!("    kernelFastPath: false\n    maxUdpSessions: {SESSION_CAP}\n");
    let agent = cluster.start_agent(Backend::Nftables, &extra);
    let fds_before = agent.metric("process_open_fds");

    let args = [IDLE_TCP, UDP_PORTS].map(|n| n.to_string());
    let (tcp, udp) = (ECHO.port.to_string(), UDP.port.to_string());
    let script = ["-c", FLOOD, IP, &tcp, &udp, &args[0], &args[1]];
    let out = cluster
        .client_for(Duration::from_secs(120), PYTHON, &script)
        .unwrap_or_else(|e| panic!("flood client: {e}\n--- agent log:\n{}", agent.logs()));
    eprintln!("{out}");
    let got: HashMap<&str, usize> = out
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    let evicted = agent.metric("edgemesh_proxy_udp_sessions_evicted_total");
    let no_session =
        agent.metric("edgemesh_proxy_udp_datagrams_dropped_total{reason=\"no_session\"}");
    let sessions = agent.metric("edgemesh_proxy_udp_sessions_active");
    eprintln!("agent: {evicted} evicted, {no_session} no_session drops, {sessions} sessions");

    assert_eq!(got["tcp_held"], IDLE_TCP, "idle TCP connections relayed");
    assert_eq!(
        got["udp_answered"],
        UDP_PORTS,
        "UDP flows answered\n--- agent log:\n{}",
        agent.logs()
    );
    assert_eq!(got["fresh_udp"], 1, "a fresh UDP client is served");
    assert_eq!(got["fresh_tcp"], 1, "a fresh TCP client is served");
    assert_eq!(got["idle_alive"], 100, "held connections still relay");
    assert!(
        evicted >= (UDP_PORTS - SESSION_CAP) as f64,
        "{evicted} evicted"
    );
    assert_eq!(no_session, 0.0, "no flow turned away");
    assert!(sessions <= SESSION_CAP as f64, "{sessions} sessions alive");
    // The admin endpoint answers (it is what read every figure above) and the fds the flood
    // took come back once its clients are gone.
    let (status, _) = agent.get("/healthz");
    assert_eq!(status, 200);
    let settled = || agent.metric("process_open_fds") <= fds_before + SESSION_CAP as f64 * 2.0;
    let back = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        settled()
    });
    assert!(
        back,
        "open fds {} after the flood, {fds_before} before",
        agent.metric("process_open_fds")
    );
}
