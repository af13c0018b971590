//! Shared helpers of the data-path acceptance tests (`tests/datapath_*.rs`): a LAN with a "node"
//! namespace running the real `edgemesh agent` and "pod" namespaces running real servers, the
//! YAML the tests write into the agent's manifests directory, and real clients (curl, ncat,
//! python) run inside the node namespace, each bounded by coreutils `timeout`.
//!
//! Addresses: LAN 192.0.2.0/24 (node .1, extra client addresses .5+, pods .11+), ClusterIPs in
//! 10.96.0.0/12 routed to the LAN inside the node namespace only, "other node" endpoints in
//! 203.0.113.0/24 (no route at all).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

mod clients;
pub mod gateway;
mod manifests;

#[path = "../common/mod.rs"]
pub mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgemesh_testkit::netns::require_root;
use edgemesh_testkit::process::Process;
use edgemesh_testkit::tls::Certs;
use edgemesh_testkit::topology::{Host, Lan, Topology};
use serde_json::Value;

pub use clients::{client_on, curl_on, udp_echo_on};
pub use manifests::{ECHO, HTTP, HTTPS, Port, Svc, UDP, WS, destination_rule};

/// The agent's `--node-name` and the nodeName of local endpoints.
pub const NODE_NAME: &str = "test-node";
pub const NODE_IP: &str = "192.0.2.1";
/// Debian's interpreter: it has `python3-websockets` (a pyenv shim on PATH may not).
pub const PYTHON: &str = "/usr/bin/python3";
const POD_SERVER: &str = include_str!("pod_server.py");
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Which interception backend the agent is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
        }
    }
}

/// A backend namespace running `pod_server.py`.
pub struct Pod {
    pub name: String,
    pub ip: String,
    pub host: Host,
    server: Process,
}

/// The node, its pods and the agent's manifests directory. Drop removes everything.
pub struct Cluster {
    pub pods: Vec<Pod>,
    pub node: Host,
    pub manifests: tempfile::TempDir,
    files: tempfile::TempDir,
    lan: Lan,
    /// The pods' HTTPS certificate (HTTPS is passed through, so only the pods read it).
    certs: Certs,
    // Last: namespaces go after the processes inside them were dropped (killed).
    topo: Topology,
}

impl Cluster {
    /// A node at 192.0.2.1 and `pods` pods (pod-a at .11, pod-b at .12, ...) on one LAN.
    pub fn new(tag: &str, pods: usize) -> Cluster {
        require_root();
        let mut topo = Topology::new(tag).expect("topology");
        let lan = topo.lan("lan").unwrap();
        let node = topo.host("node").unwrap();
        topo.attach(&node, &lan, &format!("{NODE_IP}/24")).unwrap();
        // The service range must be routable or connect() fails before netfilter's output hook.
        node.exec_ok("ip", &["route", "add", "10.96.0.0/12", "dev", "eth0"])
            .unwrap();
        let files = tempfile::tempdir().unwrap();
        let certs = Certs::new();
        certs.issue("web", "DNS:web.shop.svc");
        let (cert, key) = (certs.path("web.crt"), certs.path("web.key"));
        let script = files.path().join("pod_server.py");
        std::fs::write(&script, POD_SERVER).unwrap();
        let mut started = Vec::new();
        for i in 0..pods {
            let name = format!("pod-{}", (b'a' + i as u8) as char);
            let ip = format!("192.0.2.{}", 11 + i);
            let host = topo.host(&name).unwrap();
            topo.attach(&host, &lan, &format!("{ip}/24")).unwrap();
            let args = [path_str(&script), &name, &ip, &cert, &key];
            let server = Process::start(PYTHON, &args, Some(host.netns())).unwrap();
            started.push(Pod {
                name,
                ip,
                host,
                server,
            });
        }
        for pod in &mut started {
            let ready = format!("pod {} ready", pod.name);
            if let Err(e) = pod.server.wait_for_log(&ready, READY_TIMEOUT) {
                panic!("{} did not start: {e}", pod.name);
            }
        }
        Cluster {
            pods: started,
            node,
            manifests: tempfile::tempdir().unwrap(),
            files,
            lan,
            certs,
            topo,
        }
    }

    /// The pods' servers on the node itself, at its address: a hostNetwork endpoint.
    pub fn serve_on_node(&self) -> Process {
        let script = self.files.path().join("pod_server.py");
        let (cert, key) = (self.certs.path("web.crt"), self.certs.path("web.key"));
        let args = [path_str(&script), "node", NODE_IP, &cert, &key];
        let mut server = Process::start(PYTHON, &args, Some(self.node.netns())).unwrap();
        server
            .wait_for_log("pod node ready", READY_TIMEOUT)
            .unwrap();
        server
    }

    pub fn pod_ips(&self) -> Vec<&str> {
        self.pods.iter().map(|p| p.ip.as_str()).collect()
    }

    /// Writes `file` in the manifests directory atomically (the watcher never sees half a file).
    pub fn apply(&self, file: &str, yaml: &str) {
        let staging = self.files.path().join(format!("{file}.staging"));
        std::fs::write(&staging, yaml).unwrap();
        std::fs::rename(&staging, self.manifests.path().join(file)).unwrap();
    }

    pub fn delete(&self, file: &str) {
        std::fs::remove_file(self.manifests.path().join(file)).unwrap();
    }

    /// Another host on the node's LAN at `ip` (a "LAN host" outside the cluster), sending
    /// `routed_via_node` (e.g. external IPs) to the node.
    pub fn lan_host(&mut self, name: &str, ip: &str, routed_via_node: &[&str]) -> Host {
        let host = self.topo.host(name).unwrap();
        self.topo
            .attach(&host, &self.lan, &format!("{ip}/24"))
            .unwrap();
        for prefix in routed_via_node {
            self.topo.route(&host, prefix, NODE_IP).unwrap();
        }
        host
    }

    /// Adds another address to the node's LAN interface (a second client source).
    pub fn add_node_address(&self, ip: &str) {
        self.node
            .exec_ok("ip", &["addr", "add", &format!("{ip}/24"), "dev", "eth0"])
            .unwrap();
    }

    /// Starts the agent on the node with `backend`; `extra` is YAML appended under
    /// `modules.edgeProxy` (indent it by four spaces).
    pub fn start_agent(&self, backend: Backend, extra: &str) -> NodeAgent {
        let args = self.agent_args(backend, extra);
        let agent = NodeAgent::start(self.node.clone(), args, backend);
        let gap = agent.wait_rules_installed();
        eprintln!("rules of every proxied service installed {gap:?} after /readyz said 200");
        agent
    }

    /// Starts the agent with the command line `args` (from [`Cluster::agent_args`], extended),
    /// waits as [`Cluster::start_agent`] does.
    pub fn start_agent_args(&self, backend: Backend, args: Vec<String>) -> NodeAgent {
        let agent = NodeAgent::start(self.node.clone(), args, backend);
        agent.wait_rules_installed();
        agent
    }

    /// Starts the agent with `args` (after `agent`) and extra `env`, without a manifests
    /// directory; waits for /readyz only.
    pub fn start_agent_with(
        &self,
        backend: Backend,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> NodeAgent {
        let mut argv = vec!["agent".to_string(), "--node-name".into(), NODE_NAME.into()];
        argv.extend(["--admin-addr", "127.0.0.1:0"].map(String::from));
        argv.extend(args.iter().map(|a| a.to_string()));
        NodeAgent::start_with_env(self.node.clone(), argv, env, backend)
    }

    /// The agent's command line (its config file is written now).
    pub fn agent_args(&self, backend: Backend, extra: &str) -> Vec<String> {
        let config = self.files.path().join("edgemesh-agent.yaml");
        let body = format!(
            "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n\
             modules:\n  edgeDNS:\n    enable: false\n  edgeProxy:\n    enable: true\n    \
             backend: {}\n{extra}",
            backend.name()
        );
        std::fs::write(&config, body).unwrap();
        vec![
            "agent".to_string(),
            "--manifests".into(),
            path_str(self.manifests.path()).into(),
            "--node-name".into(),
            NODE_NAME.into(),
            "--admin-addr".into(),
            "127.0.0.1:0".into(),
            "--config".into(),
            path_str(&config).into(),
        ]
    }

    /// `nft list set inet edgemesh svc4` in the node.
    pub fn nft_set(&self) -> String {
        self.node
            .exec_ok("nft", &["list", "set", "inet", "edgemesh", "svc4"])
            .unwrap()
    }

    pub fn nft_table(&self) -> String {
        self.node
            .exec_ok("nft", &["list", "table", "inet", "edgemesh"])
            .unwrap()
    }

    pub fn iptables_nat(&self) -> String {
        self.node.exec_ok("iptables-save", &["-t", "nat"]).unwrap()
    }

    /// The node's interception rules of `backend`, as text.
    pub fn rules(&self, backend: Backend) -> String {
        match backend {
            Backend::Nftables => self.nft_table(),
            Backend::Iptables => self.iptables_nat(),
        }
    }
}

/// The real agent running in the node namespace.
pub struct NodeAgent {
    pub process: Process,
    node: Host,
    args: Vec<String>,
    backend: Backend,
}

impl NodeAgent {
    /// Starts the agent and waits for /readyz.
    fn start(node: Host, args: Vec<String>, backend: Backend) -> NodeAgent {
        NodeAgent::start_with_env(node, args, &[], backend)
    }

    fn start_with_env(
        node: Host,
        args: Vec<String>,
        env: &[(&str, &str)],
        backend: Backend,
    ) -> NodeAgent {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::start_with(
            env!("CARGO_BIN_EXE_edgemesh"),
            &argv,
            Some(node.netns()),
            env,
        )
        .expect("start edgemesh");
        let mut agent = NodeAgent {
            process,
            node,
            args,
            backend,
        };
        if let Err(e) = agent.process.wait_ready(READY_TIMEOUT) {
            panic!("agent not ready: {e}");
        }
        agent
    }

    /// Waits until every proxied ClusterIP is in the rules (immediate since /readyz waits for
    /// the first rule sync; `agent_readyz_implies_rules_installed` pins that): a cheap guard so
    /// the traffic tests never race the proxier.
    pub fn wait_rules_installed(&self) -> Duration {
        let installed = || {
            let rules = match self.backend {
                Backend::Nftables => rules_text(
                    &self.node,
                    &["nft", "list", "set", "inet", "edgemesh", "svc4"],
                ),
                Backend::Iptables => rules_text(&self.node, &["iptables-save", "-t", "nat"]),
            };
            proxied_cluster_ips(&self.snapshot())
                .iter()
                .all(|ip| rules.contains(ip.as_str()))
        };
        wait_until("rules of every proxied service", READY_TIMEOUT, installed)
            .unwrap_or_else(|e| panic!("{e}\n--- agent log:\n{}", self.logs()))
    }

    /// SIGKILL (no cleanup at all), then the same command line again; waits for /readyz.
    pub fn kill_and_restart(self) -> NodeAgent {
        let NodeAgent {
            mut process,
            node,
            args,
            backend,
        } = self;
        process.kill().unwrap();
        drop(process);
        let agent = NodeAgent::start(node, args, backend);
        agent.wait_rules_installed();
        agent
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Waits for a log line containing `needle` (bounded); returns it.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        self.process
            .wait_for_log(needle, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.process
            .http_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n--- agent log:\n{}", self.logs()))
    }

    pub fn snapshot(&self) -> Value {
        let (status, body) = self.get("/debug/snapshot");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("snapshot is JSON")
    }

    /// The value of an unlabelled Prometheus sample, 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Polls the snapshot until `check` holds; fails with the snapshot and log after `timeout`.
    pub fn wait_snapshot(&self, what: &str, timeout: Duration, check: impl Fn(&Value) -> bool) {
        wait_until(what, timeout, || check(&self.snapshot())).unwrap_or_else(|e| {
            panic!(
                "{e}\n--- snapshot:\n{:#}\n--- agent log:\n{}",
                self.snapshot(),
                self.logs()
            )
        });
    }

    pub fn node(&self) -> &Host {
        &self.node
    }
}

/// The first ClusterIP of every service the snapshot says the agent proxies.
pub fn proxied_cluster_ips(snapshot: &Value) -> Vec<String> {
    let Some(services) = snapshot["services"].as_object() else {
        return Vec::new();
    };
    services
        .values()
        .filter(|s| s["proxy"] == "proxied")
        .filter_map(|s| s["clusterIps"][0].as_str().map(String::from))
        .collect()
}

/// Output of a rule listing in `node`; empty while the table does not exist yet.
fn rules_text(node: &Host, argv: &[&str]) -> String {
    node.exec(argv[0], &argv[1..])
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// Backend addresses of port `port_index` of `shop/name` in a snapshot, sorted.
pub fn snapshot_backends(snapshot: &Value, name: &str, port_index: usize) -> Vec<String> {
    common::port_backends(snapshot, &format!("shop/{name}"), port_index)
}

/// Polls `check` every 20 ms until it holds (Ok: how long it took) or `timeout` passes.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        if check() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            return Err(format!("{what}: not seen within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Counts of each distinct answer, e.g. {"pod-a": 10, "pod-b": 10}.
pub fn tally(answers: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.clone()).or_insert(0) += 1;
    }
    counts
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
