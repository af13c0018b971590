//! Issue #15 item 6 acceptance: `edgemesh doctor` against real agents in namespaces the test
//! creates. A healthy node passes; each fault injected gives its check's FAIL: kube-proxy's
//! `KUBE-SERVICES` jump (iptables) or nat chain (nftables) ahead of ours, DNS blocked, a wrong
//! PSK, an unreachable relay, a hub whose upstream is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::{Agent, WEB_SERVICE, netns, shop_slice};
use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::hub::HubCommand;
use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::Process;
use edgemesh_testkit::topology::Topology;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_edgemesh");
const HEAD: &str = "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n";
const RELAY_IP: &str = "198.51.100.9";
const EDGE_IP: &str = "198.51.100.1";

/// The files a node's agent and doctor read: config, manifests, resolv.conf, PSK.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("manifests")).unwrap();
        let endpoints = ["{addresses: [192.0.2.11], conditions: {ready: true}}"];
        let slice = shop_slice("web", "{name: http, port: 8080}", &endpoints);
        let manifests = format!("{WEB_SERVICE}---{slice}");
        std::fs::write(dir.path().join("manifests/shop.yaml"), manifests).unwrap();
        std::fs::write(dir.path().join("resolv.conf"), "nameserver 169.254.96.16\n").unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.dir.path().join(name), text).unwrap();
        self.path(name)
    }
}

/// `edgemesh doctor ARGS -o json` in `ns`: the exit status and the findings.
fn doctor(ns: &Netns, args: &[&str]) -> (i32, Vec<Value>) {
    let out = ns
        .command(BIN)
        .arg("doctor")
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let findings: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), findings)
}

fn finding<'a>(findings: &'a [Value], check: &str) -> &'a Value {
    findings
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {findings:#?}"))
}

fn status<'a>(findings: &'a [Value], check: &str) -> &'a str {
    finding(findings, check)["status"]
        .as_str()
        .unwrap_or_default()
}

fn failed(findings: &[Value]) -> Vec<&str> {
    findings
        .iter()
        .filter(|f| f["status"] == "FAIL")
        .filter_map(|f| f["check"].as_str())
        .collect()
}

/// The doctor's flags for an agent started by [`Agent::start`] with `files`.
fn flags(files: &Files, config: &str, admin: SocketAddr) -> Vec<String> {
    [
        "--config",
        config,
        "--manifests",
        &files.path("manifests"),
        "--admin-addr",
        &admin.to_string(),
        "--node-name",
        "test-node",
        "--resolv-conf",
        &files.path("resolv.conf"),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn refs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

fn start_agent(files: &Files, config: &str, tag: &str) -> (Agent, SocketAddr) {
    let args = ["--config", config, "--manifests", &files.path("manifests")];
    let mut agent = Agent::start(netns(tag), &args).ready();
    let admin = agent.process.admin_addr(Duration::from_secs(5)).unwrap();
    (agent, admin)
}

/// An agent in a namespace of its own with the proxy on `backend` and DNS, the doctor's flags
/// for it, and the doctor's first findings, which must have no FAIL.
fn healthy(files: &Files, backend: &str, tag: &str) -> (Agent, Vec<String>, Vec<Value>) {
    let config = files.write(
        "agent.yaml",
        &format!("{HEAD}modules:\n  edgeProxy:\n    enable: true\n    backend: {backend}\n  edgeDNS:\n    enable: true\n"),
    );
    let (agent, admin) = start_agent(files, &config, tag);
    let flags = flags(files, &config, admin);
    let (code, findings) = doctor(&agent.netns, &refs(&flags));
    assert_eq!(
        failed(&findings),
        Vec::<&str>::new(),
        "{findings:#?}\n{}",
        agent.logs()
    );
    assert_eq!(code, 0);
    (agent, flags, findings)
}

/// Runs the doctor until `check` has `want` (the agent repairs some faults within seconds, so
/// a fault is injected again before each try), at most three times.
fn until(ns: &Netns, flags: &[&str], inject: impl Fn(), check: &str, want: &str) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..3 {
        inject();
        let (code, findings) = doctor(ns, flags);
        if status(&findings, check) == want {
            assert_eq!(code, i32::from(want == "FAIL"), "{findings:#?}");
            return findings;
        }
        last = findings;
    }
    panic!("{check} never {want}: {last:#?}");
}

#[test]
fn netns_doctor_iptables_healthy_then_kube_services_first_fails() {
    let files = Files::new();
    let (agent, flags, findings) = healthy(&files, "iptables", "docipt");
    let ns = &agent.netns;
    let flags = refs(&flags);
    for check in [
        "config",
        "agent.health",
        "agent.ready",
        "rules.order",
        "dns.server",
        "dns.resolv",
    ] {
        assert_eq!(status(&findings, check), "PASS", "{check}: {findings:#?}");
    }
    assert!(
        finding(&findings, "rules.order")["message"]
            .as_str()
            .unwrap()
            .contains("iptables")
    );
    assert_eq!(status(&findings, "api.reach"), "SKIP", "manifests only");

    // kube-proxy (re)started and prepended its jump: ours now come second.
    ns.exec_ok("iptables", &["-t", "nat", "-N", "KUBE-SERVICES"])
        .unwrap();
    let inject = || {
        ns.exec_ok(
            "iptables",
            &["-t", "nat", "-I", "PREROUTING", "1", "-j", "KUBE-SERVICES"],
        )
        .unwrap();
    };
    let findings = until(ns, &flags, inject, "rules.order", "FAIL");
    let order = finding(&findings, "rules.order");
    assert!(
        order["message"].as_str().unwrap().contains("KUBE-SERVICES"),
        "{order}"
    );
    assert!(!order["fix"].as_str().unwrap().is_empty());
}

#[test]
fn netns_doctor_nftables_healthy_then_kube_proxy_first_and_dns_blocked_fail() {
    let files = Files::new();
    let (agent, flags, findings) = healthy(&files, "nftables", "docnft");
    let ns = &agent.netns;
    let flags = refs(&flags);
    assert_eq!(status(&findings, "rules.order"), "PASS", "{findings:#?}");
    assert_eq!(status(&findings, "dns.server"), "PASS", "{findings:#?}");
    assert!(
        finding(&findings, "dns.server")["message"]
            .as_str()
            .unwrap()
            .contains("web.shop.svc.cluster.local")
    );
    // 40001 lies in Linux's default ephemeral range; the test kit reserves it in its
    // namespaces. Unreserved, it is a warning (not a failure).
    let port = finding(&findings, "proxy.port");
    assert_eq!(port["status"], "PASS", "{port}");
    assert!(
        port["message"].as_str().unwrap().contains("reserved"),
        "{port}"
    );
    let key = "net.ipv4.ip_local_reserved_ports";
    let reserved = ns.exec_ok("sysctl", &["-n", key]).unwrap();
    ns.exec_ok("sysctl", &["-qw", &format!("{key}=")]).unwrap();
    let (code, findings) = doctor(ns, &flags);
    assert_eq!(code, 0);
    assert_eq!(status(&findings, "proxy.port"), "WARN", "{findings:#?}");
    let restore = format!("{key}={}", reserved.trim());
    ns.exec_ok("sysctl", &["-qw", &restore]).unwrap();

    // kube-proxy's nat chain hooked ahead of ours.
    let kube_proxy = "table ip kubeproxy {\n chain KUBE-SERVICES {\n }\n chain PREROUTING {\n  \
                      type nat hook prerouting priority -150; policy accept;\n  jump KUBE-SERVICES\n }\n}\n";
    let (code, findings) = nft(ns, kube_proxy, &flags);
    assert_eq!(code, 1);
    assert_eq!(failed(&findings), ["rules.order"], "{findings:#?}");
    ns.exec_ok("nft", &["delete", "table", "ip", "kubeproxy"])
        .unwrap();

    // DNS blocked: nothing reaches the server on 169.254.96.16:53.
    let block = "table inet block {\n chain input {\n  type filter hook input priority -200; policy accept;\n  \
                 udp dport 53 drop\n  tcp dport 53 drop\n }\n}\n";
    let (code, findings) = nft(ns, block, &flags);
    assert_eq!(code, 1);
    assert_eq!(failed(&findings), ["dns.server"], "{findings:#?}");
    let dns = finding(&findings, "dns.server");
    assert!(
        dns["message"]
            .as_str()
            .unwrap()
            .contains("169.254.96.16:53"),
        "{dns}"
    );
}

/// Loads `ruleset` into `ns`, then runs the doctor.
fn nft(ns: &Netns, ruleset: &str, flags: &[&str]) -> (i32, Vec<Value>) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), ruleset).unwrap();
    ns.exec_ok("nft", &["-f", file.path().to_str().unwrap()])
        .unwrap();
    doctor(ns, flags)
}

fn tunnel_config(psk: &str, relay_ip: &str) -> String {
    format!(
        "{HEAD}modules:\n  edgeDNS:\n    enable: false\n  edgeProxy:\n    enable: false\n  \
         edgeTunnel:\n    enable: true\n    psk:\n      path: {psk}\n    relayNodes:\n    \
         - nodeName: relay\n      advertiseAddress: [{relay_ip}]\n"
    )
}

/// `edgemesh agent` as node `name` in `ns`.
fn tunnel_agent(ns: &Netns, files: &Files, config: &str, name: &str) -> (Process, SocketAddr) {
    let state = files.dir.path().join(format!("state-{name}"));
    let args = [
        "agent",
        "--config",
        config,
        "--manifests",
        &files.path("manifests"),
        "--admin-addr",
        "127.0.0.1:0",
        "--node-name",
        name,
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let mut agent = Process::start(BIN, &args, Some(ns)).unwrap();
    agent
        .wait_ready(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = agent.admin_addr(Duration::from_secs(5)).unwrap();
    (agent, admin)
}

fn tunnel_flags(files: &Files, config: &str, admin: SocketAddr) -> Vec<String> {
    let mut flags = flags(files, config, admin);
    flags[7] = "edge".into(); // --node-name
    flags
}

/// Waits until the agent at `agent` holds a connection to the relay.
fn wait_relay_connected(agent: &Process) {
    let started = Instant::now();
    loop {
        let (_, body) = agent.http_get("/debug/peers").unwrap();
        if body.contains("\"isRelay\": true") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never connected to the relay: {body}\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn netns_doctor_tunnel_healthy_then_wrong_psk_and_unreachable_relay_fail() {
    require_root();
    let mut topology = Topology::new("doctun").unwrap();
    let edge = topology.host("edge").unwrap();
    let relay_host = topology.host("relay").unwrap();
    topology
        .link(
            &edge,
            &format!("{EDGE_IP}/24"),
            &relay_host,
            &format!("{RELAY_IP}/24"),
        )
        .unwrap();
    let files = Files::new();
    let psk = files.write("psk", "the mesh's key\n");
    let other_psk = files.write("psk-other", "another key\n");
    let relay_config = files.write("relay.yaml", &tunnel_config(&psk, RELAY_IP));
    let (_relay, _) = tunnel_agent(relay_host.netns(), &files, &relay_config, "relay");

    // Healthy: same PSK, relay reachable and connected.
    let config = files.write("edge.yaml", &tunnel_config(&psk, RELAY_IP));
    let (mut agent, admin) = tunnel_agent(edge.netns(), &files, &config, "edge");
    wait_relay_connected(&agent);
    let flags = tunnel_flags(&files, &config, admin);
    let (code, findings) = doctor(edge.netns(), &refs(&flags));
    assert_eq!(failed(&findings), Vec::<&str>::new(), "{findings:#?}");
    assert_eq!(code, 0);
    for check in ["tunnel.psk", "tunnel.relay relay", "tunnel.peers"] {
        assert_eq!(status(&findings, check), "PASS", "{check}: {findings:#?}");
    }
    agent.terminate(Duration::from_secs(10)).unwrap();

    // Wrong PSK: the relay answers TCP, the handshake fails (and is counted).
    let config = files.write("edge-psk.yaml", &tunnel_config(&other_psk, RELAY_IP));
    let (mut agent, admin) = tunnel_agent(edge.netns(), &files, &config, "edge");
    std::thread::sleep(Duration::from_secs(3));
    let flags = tunnel_flags(&files, &config, admin);
    let (code, findings) = doctor(edge.netns(), &refs(&flags));
    assert_eq!(code, 1);
    assert_eq!(
        failed(&findings),
        ["tunnel.peers"],
        "{findings:#?}\n{}",
        agent.logs()
    );
    let peers = finding(&findings, "tunnel.peers")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(peers.contains("handshakes failed: wrong PSK"), "{peers}");
    agent.terminate(Duration::from_secs(10)).unwrap();

    // A relay address nobody listens on.
    let nobody = "198.51.100.77";
    let config = files.write("edge-gone.yaml", &tunnel_config(&psk, nobody));
    let (_agent, admin) = tunnel_agent(edge.netns(), &files, &config, "edge");
    let flags = tunnel_flags(&files, &config, admin);
    let (code, findings) = doctor(edge.netns(), &refs(&flags));
    assert_eq!(code, 1);
    assert_eq!(
        failed(&findings),
        ["tunnel.relay relay", "tunnel.peers"],
        "{findings:#?}"
    );
    let peers = finding(&findings, "tunnel.peers")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(peers.contains("relay unreachable"), "{peers}");
}

#[test]
fn netns_doctor_hub_online_then_upstream_gone_fails() {
    let ns = netns("dochub");
    let listener = ns.run(|| TcpListener::bind("127.0.0.1:0")).unwrap();
    let api = ApiServer::from_listener(listener).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (mut hub, _) = HubCommand::new(&api.url(), cache.path())
        .start_plain(BIN, Some(&ns), Duration::from_secs(20))
        .unwrap();
    let hub_admin = hub.admin_addr(Duration::from_secs(5)).unwrap();
    let files = Files::new();
    let config = files.write(
        "agent.yaml",
        &format!(
            "{HEAD}modules:\n  edgeProxy:\n    enable: false\n  edgeDNS:\n    enable: false\n"
        ),
    );
    // Only the hub is judged here: the agent's checks fail (none runs), the hub's must not.
    let mut flags = flags(&files, &config, "127.0.0.1:9".parse().unwrap());
    flags.extend(["--hub-admin-addr".to_owned(), hub_admin.to_string()]);
    let flags = refs(&flags);
    wait_hub(&hub, 200);
    let (_, findings) = doctor(&ns, &flags);
    assert_eq!(status(&findings, "hub"), "PASS", "{findings:#?}");

    drop(api);
    wait_hub(&hub, 503);
    let (code, findings) = doctor(&ns, &flags);
    assert_eq!(code, 1);
    let hub_finding = finding(&findings, "hub");
    assert_eq!(
        hub_finding["status"],
        "FAIL",
        "{findings:#?}\n{}",
        hub.logs()
    );
    assert!(
        hub_finding["message"].as_str().unwrap().contains("offline"),
        "{hub_finding}"
    );
    hub.terminate(Duration::from_secs(10)).unwrap();
}

/// Waits until the hub's `/readyz` answers `want`.
fn wait_hub(hub: &Process, want: u16) {
    let started = Instant::now();
    loop {
        let got = hub.http_get("/readyz").map(|(s, _)| s).unwrap_or(0);
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "hub /readyz never {want} (last {got})\n{}",
            hub.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
