//! Issue acceptance (node-local DNS): `dig` against a real agent, with a real upstream (dnsmasq)
//! in another namespace standing in for the cloud's DNS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod common;
mod metrics_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, WEB_SERVICE, netns, shop_slice};
use edgemesh_testkit::netns::Netns;

const DOMAIN: &str = "edge.example";
const NODE_IP: &str = "198.51.100.1";
const UPSTREAM_IP: &str = "198.51.100.2";

/// A headless Service `shop/db`; [`shop_yaml`] adds its endpoints, with host names.
const DB: &str = "
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
";

/// [`WEB_SERVICE`], [`DB`] and its endpoints.
fn shop_yaml() -> String {
    let endpoints = [
        "{addresses: [192.0.2.11], hostname: db-0}",
        "{addresses: [192.0.2.12], hostname: db-1}",
    ];
    let slice = shop_slice("db", "{name: pg, port: 5432}", &endpoints);
    format!("{WEB_SERVICE}---{DB}---{slice}")
}

fn config(dir: &std::path::Path) -> String {
    let path = dir.join("agent.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n\
             modules:\n  edgeDNS:\n    enable: true\n    clusterDomain: {DOMAIN}\n    cacheDNS:\n      \
             upstreamServers: [\"{UPSTREAM_IP}\"]\n      cacheTTL: 1\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// `dig +short` answers (one per line) and the status line, with a bounded wait.
fn dig(ns: &Netns, server: &str, name: &str, kind: &str) -> (String, String) {
    let at = format!("@{server}");
    let out = ns
        .exec("dig", &[&at, name, kind, "+time=1", "+tries=1"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| "NO ANSWER".into());
    let answers = text
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().last())
        .collect::<Vec<_>>()
        .join(" ");
    (status, answers)
}

fn veth(a: &Netns, a_ip: &str, b: &Netns, b_ip: &str) {
    let (ia, ib) = (
        format!("v{}", std::process::id() % 100_000),
        format!("w{}", std::process::id() % 100_000),
    );
    let run = |args: &[&str]| {
        assert!(
            Command::new("ip").args(args).status().unwrap().success(),
            "ip {args:?}"
        )
    };
    run(&[
        "link",
        "add",
        &ia,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        &ib,
        "netns",
        b.name(),
    ]);
    a.exec_ok("ip", &["addr", "add", &format!("{a_ip}/24"), "dev", &ia])
        .unwrap();
    b.exec_ok("ip", &["addr", "add", &format!("{b_ip}/24"), "dev", &ib])
        .unwrap();
    a.exec_ok("ip", &["link", "set", &ia, "up"]).unwrap();
    b.exec_ok("ip", &["link", "set", &ib, "up"]).unwrap();
}

fn dnsmasq(ns: &Netns) -> Child {
    ns.command("dnsmasq")
        .args([
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--port=53",
        ])
        .arg(format!("--listen-address={UPSTREAM_IP}"))
        .arg("--address=/external.example/203.0.113.7")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (Debian package dnsmasq-base) must be installed")
}

#[test]
fn agent_dns_answers_cluster_names_forwards_and_serves_stale() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("shop.yaml"), shop_yaml()).unwrap();
    let node = netns("dns");
    let upstream_ns = netns("up");
    veth(&node, NODE_IP, &upstream_ns, UPSTREAM_IP);
    let mut upstream = dnsmasq(&upstream_ns);
    let args = [
        "--config",
        &config(dir.path()),
        "--manifests",
        manifests.to_str().unwrap(),
    ];
    let mut agent = Agent::start(node, &args).ready();
    let ns = &agent.netns;
    let ip = "169.254.96.16";

    assert_eq!(
        dig(ns, ip, &format!("web.shop.svc.{DOMAIN}"), "A"),
        ("NOERROR".into(), "10.96.0.10".into())
    );
    assert_eq!(
        dig(ns, ip, &format!("db.shop.svc.{DOMAIN}"), "A").1,
        "192.0.2.11 192.0.2.12"
    );
    assert_eq!(
        dig(ns, ip, &format!("db-1.db.shop.svc.{DOMAIN}"), "A").1,
        "192.0.2.12"
    );
    let srv = dig(ns, ip, &format!("_pg._tcp.db.shop.svc.{DOMAIN}"), "SRV").1;
    assert!(
        srv.contains(&format!("db-0.db.shop.svc.{DOMAIN}.")),
        "{srv}"
    );
    assert_eq!(
        dig(ns, ip, "10.0.96.10.in-addr.arpa", "PTR").1,
        format!("web.shop.svc.{DOMAIN}.")
    );
    assert_eq!(
        dig(ns, ip, &format!("web.shop.svc.{DOMAIN}"), "AAAA"),
        ("NOERROR".into(), String::new()),
        "NODATA"
    );
    assert_eq!(
        dig(ns, ip, &format!("nope.shop.svc.{DOMAIN}"), "A").0,
        "NXDOMAIN"
    );

    // Deleted service → NXDOMAIN within a second.
    std::fs::write(manifests.join("shop.yaml"), DB).unwrap();
    let started = Instant::now();
    while dig(ns, ip, &format!("web.shop.svc.{DOMAIN}"), "A").0 != "NXDOMAIN" {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "deleted service still answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // External names go to the upstream; with it gone they are served stale once expired.
    assert_eq!(dig(ns, ip, "external.example", "A").1, "203.0.113.7");
    upstream.kill().unwrap();
    upstream.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // past cacheTTL: 1
    assert_eq!(
        dig(ns, ip, "external.example", "A"),
        ("NOERROR".into(), "203.0.113.7".into()),
        "stale"
    );
    let started = Instant::now();
    assert_eq!(dig(ns, ip, "never-seen.example", "A").0, "SERVFAIL");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SERVFAIL took {:?}",
        started.elapsed()
    );

    // The listener answers only on its own address, not on the node's other addresses.
    assert_eq!(
        dig(ns, NODE_IP, &format!("db.shop.svc.{DOMAIN}"), "A").0,
        "NO ANSWER"
    );
    assert_eq!(
        dig(&upstream_ns, NODE_IP, &format!("db.shop.svc.{DOMAIN}"), "A").0,
        "NO ANSWER"
    );
    let metrics = agent.process.http_get("/metrics").unwrap().1;
    assert!(
        metrics.contains("edgemesh_dns_stale_answers_total 1"),
        "{metrics}"
    );
    // The same counters through the reference OpenMetrics parser, responses by rcode.
    let admin = agent.process.admin_addr(Duration::from_secs(5)).unwrap();
    let scraped = metrics_support::scrape(&agent.netns, admin);
    assert_eq!(scraped.content_type, metrics_support::OPENMETRICS);
    let responses = |rcode| scraped.value("edgemesh_dns_responses", "counter", &[("rcode", rcode)]);
    assert!(responses("NOERROR") >= 1.0 && responses("SERVFAIL") >= 1.0);
    assert_eq!(responses("FORMERR"), 0.0);
    for name in ["queries", "cluster_answers", "forwarded"] {
        let name = format!("edgemesh_dns_{name}");
        assert!(scraped.value(&name, "counter", &[]) >= 1.0, "{name}");
    }
    for name in ["cache_hits", "upstream_failures", "upstream_tcp_retries"] {
        scraped.value(&format!("edgemesh_dns_{name}"), "counter", &[]);
    }
    let timed = scraped.histogram_count("edgemesh_dns_request_duration_seconds", &[]);
    assert!(
        timed >= responses("NOERROR") + responses("SERVFAIL"),
        "{timed}"
    );
}

/// Issue #18, item 15: a LAN neighbour that routes 169.254.96.16 via the node had an open
/// resolver (forwarding included, an amplifier); clients on the node's own LAN get REFUSED now,
/// while the node and its pods (its Node's `podCIDR`, or a bridge of the node) are answered.
#[test]
fn agent_dns_answers_the_node_and_its_pods_not_lan_neighbours() {
    use edgemesh_testkit::process::Process;
    use edgemesh_testkit::topology::Topology;

    edgemesh_testkit::netns::require_root();
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let node_object = "---\napiVersion: v1\nkind: Node\nmetadata: {name: test-node}\n\
                       spec: {podCIDR: 10.244.1.0/24}\n\
                       status: {addresses: [{type: InternalIP, address: 198.51.100.1}]}\n";
    std::fs::write(
        manifests.join("shop.yaml"),
        format!("{}{node_object}", shop_yaml()),
    )
    .unwrap();
    let mut topology = Topology::new("dnsacl").unwrap();
    let node = topology.host("node").unwrap();
    let neighbour = topology.host("lan").unwrap();
    let pod = topology.host("pod").unwrap();
    topology
        .link(&node, "198.51.100.1/24", &neighbour, "198.51.100.7/24")
        .unwrap();
    topology
        .link(&node, "10.244.1.1/24", &pod, "10.244.1.5/24")
        .unwrap();
    // A pod on a docker bridge outside the Node's podCIDR, as on many KubeEdge edge nodes.
    let docker_pod = topology.host("dock").unwrap();
    topology
        .link(&node, "172.17.0.1/16", &docker_pod, "172.17.0.5/16")
        .unwrap();
    topology.default_route(&docker_pod, "172.17.0.1").unwrap();
    topology
        .route(&neighbour, "169.254.96.16/32", "198.51.100.1")
        .unwrap();
    topology.default_route(&pod, "10.244.1.1").unwrap();
    let state = tempfile::tempdir().unwrap();
    let args = [
        "agent",
        "--config",
        &config(dir.path()),
        "--manifests",
        manifests.to_str().unwrap(),
        "--admin-addr",
        "127.0.0.1:0",
        "--node-name",
        "test-node",
        "--state-dir",
        state.path().to_str().unwrap(),
    ];
    let mut agent =
        Process::start(env!("CARGO_BIN_EXE_edgemesh"), &args, Some(node.netns())).unwrap();
    agent
        .wait_ready(common::READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.logs()));
    let name = format!("web.shop.svc.{DOMAIN}");
    let ip = "169.254.96.16";
    assert_eq!(
        dig(node.netns(), ip, &name, "A"),
        ("NOERROR".into(), "10.96.0.10".into())
    );
    assert_eq!(
        dig(pod.netns(), ip, &name, "A"),
        ("NOERROR".into(), "10.96.0.10".into())
    );
    assert_eq!(
        dig(docker_pod.netns(), ip, &name, "A"),
        ("NOERROR".into(), "10.96.0.10".into())
    );
    assert_eq!(dig(neighbour.netns(), ip, &name, "A").0, "REFUSED");
    assert_eq!(
        dig(neighbour.netns(), ip, "external.example", "A").0,
        "REFUSED"
    );
}
