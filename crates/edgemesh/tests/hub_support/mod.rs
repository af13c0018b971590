//! Shared helpers of the edge hub's real-binary tests: certificates made with the `openssl` CLI,
//! a "cloud" namespace with the apiserver double behind a TLS front (a second `edgemesh hub`
//! without cache, which doubles as a check that `--ca-file` upstreams work), an "edge" namespace
//! with the hub under test, and kubectl driven inside the edge namespace.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::hub::{HubCommand, PLAIN_LISTENING, SECURE_LISTENING};
use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::Process;
pub use edgemesh_testkit::tls::Certs;
use edgemesh_testkit::topology::{Host, Topology};

pub const BIN: &str = env!("CARGO_BIN_EXE_edgemesh");
pub const CLOUD_IP: &str = "198.51.100.1";
pub const EDGE_IP: &str = "198.51.100.2";
pub const HUB_IP: &str = "169.254.2.1";
pub const TOKEN: &str = "token-of-edge-app";

/// An edge node for an agent next to a hub: a namespace whose ClusterIP range is routed locally
/// (the agent's output-hook DNAT needs a route first), with the apiserver double inside it.
pub fn edge_node_with_api(tag: &str) -> (Netns, ApiServer) {
    require_root();
    let ns = Netns::new(tag).expect("create network namespace");
    ns.exec_ok(
        "ip",
        &["route", "add", "local", "10.96.0.0/12", "dev", "lo"],
    )
    .unwrap();
    let listener = ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    (ns, ApiServer::from_listener(listener).unwrap())
}

/// The test CA with the upstream's and the hub's serving certificates (`upstream.crt`, `hub.crt`).
pub fn hub_certs() -> Certs {
    let certs = Certs::new();
    certs.issue("upstream", &format!("IP:{CLOUD_IP}"));
    certs.issue(
        "hub",
        &format!(
            "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,\
            DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:{HUB_IP},IP:127.0.0.1"
        ),
    );
    certs
}

/// Cloud and edge namespaces joined by one veth ("the link").
pub struct World {
    pub topo: Topology,
    pub cloud: Host,
    pub edge: Host,
    pub edge_if: String,
    pub api: ApiServer,
    pub front: Process,
    pub certs: Certs,
    _front_cache: tempfile::TempDir,
}

impl World {
    pub fn new(tag: &str) -> World {
        require_root();
        let mut topo = Topology::new(tag).unwrap();
        let cloud = topo.host("cloud").unwrap();
        let edge = topo.host("edge").unwrap();
        let (_, edge_if) = topo
            .link(
                &cloud,
                &format!("{CLOUD_IP}/30"),
                &edge,
                &format!("{EDGE_IP}/30"),
            )
            .unwrap();
        let listener = cloud
            .run(|| std::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let api = ApiServer::builder()
            .bookmark_interval(Duration::from_millis(500))
            .start_on(listener)
            .unwrap();
        let certs = hub_certs();
        let front_cache = tempfile::tempdir().unwrap();
        let front = start_front(&cloud, &api, &certs, front_cache.path());
        World {
            topo,
            cloud,
            edge,
            edge_if,
            api,
            front,
            certs,
            _front_cache: front_cache,
        }
    }

    pub fn cut(&self) {
        self.edge
            .exec_ok("ip", &["link", "set", "dev", &self.edge_if, "down"])
            .unwrap();
    }

    pub fn restore(&self) {
        self.edge
            .exec_ok("ip", &["link", "set", "dev", &self.edge_if, "up"])
            .unwrap();
    }

    /// `edgemesh hub` in the edge namespace on 169.254.2.1:10268 (HTTPS) and 127.0.0.1:10261.
    pub fn start_hub(&self, cache_dir: &Path, extra: &[&str]) -> Process {
        let cache = cache_dir.to_string_lossy().into_owned();
        let (ca, crt, key) = (
            self.certs.path("ca.crt"),
            self.certs.path("hub.crt"),
            self.certs.path("hub.key"),
        );
        let mut args = vec![
            "hub",
            "--server-addr",
            "https://198.51.100.1:6443",
            "--ca-file",
            &ca,
            "--cert-file",
            &crt,
            "--key-file",
            &key,
            "--cache-dir",
            &cache,
            "--heartbeat-interval",
            "200ms",
            "--heartbeat-timeout",
            "500ms",
            "--heartbeat-failed-retry",
            "1",
            "--heartbeat-healthy-threshold",
            "1",
            "--connect-timeout",
            "500ms",
            "--bookmark-interval",
            "1s",
            "--config-poll-interval",
            "300ms",
            "--admin-addr",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let mut hub = Process::start(BIN, &args, Some(&self.edge)).unwrap();
        hub.wait_for_log(PLAIN_LISTENING, Duration::from_secs(20))
            .unwrap();
        hub.admin_addr(Duration::from_secs(5)).unwrap();
        hub
    }

    /// Writes a kubeconfig for the hub's HTTPS address with the test CA and `token`.
    pub fn kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{token}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: edge\n  cluster:\n    \
            server: https://{HUB_IP}:10268\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    \
            token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: edge\n    user: u\ncurrent-context: c\n",
            self.certs.path("ca.crt")
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// kubectl ARGS inside the edge namespace with a fresh discovery cache (so offline answers
    /// really come from the hub, not from kubectl's own cache).
    pub fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let cache = tempfile::tempdir().unwrap();
        let mut cmd = self.edge.command("kubectl");
        cmd.env("KUBECONFIG", kubeconfig)
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["--request-timeout", "10s"])
            .args(args);
        run_bounded(cmd, Duration::from_secs(30))
    }
}

/// The TLS front of the apiserver double: a cache-less hub in the cloud namespace.
fn start_front(cloud: &Netns, api: &ApiServer, certs: &Certs, cache: &Path) -> Process {
    let upstream = format!("http://127.0.0.1:{}", api.addr().port());
    let (crt, key) = (certs.path("upstream.crt"), certs.path("upstream.key"));
    let command = HubCommand::new(&upstream, cache)
        .flag("--secure-addr", "198.51.100.1:6443")
        .flag("--insecure-addr", "")
        .flag("--cert-file", &crt)
        .flag("--key-file", &key)
        .flag("--heartbeat-path", "/version");
    let mut front = Process::start(BIN, &command.args(), Some(cloud)).unwrap();
    front
        .wait_for_log(SECURE_LISTENING, Duration::from_secs(20))
        .unwrap();
    front
}

/// Runs a command with a deadline (kill at the deadline: a hung client fails the test).
pub fn run_bounded(mut cmd: std::process::Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("command {cmd:?} did not finish within {limit:?}");
        }
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `/debug/hub` until `online` matches (bounded).
pub fn wait_online(hub: &Process, online: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, body)) = hub.http_get("/debug/hub") {
            let status: serde_json::Value = serde_json::from_str(&body).unwrap();
            if status["online"] == online {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "hub never became online={online}:\n{}",
            hub.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A few objects of the kinds kubectl asks for.
pub fn seed(api: &ApiServer) {
    for (ns, name) in [("prod", "web-1"), ("prod", "db-1"), ("dev", "web-2")] {
        api.apply(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}))
            .unwrap();
    }
    api.apply(serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}))
        .unwrap();
    api.apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "prod"}, "data": {"k": "v"}}))
        .unwrap();
}

/// The plain-HTTP address [`plain_hub`] serves on (inside the test's own namespace).
pub const PLAIN_HUB: &str = "127.0.0.1:10261";

/// `edgemesh hub` in `ns` with only its plain-HTTP front on [`PLAIN_HUB`], caching for kubectl,
/// in front of `api`; `wrapper` runs it under another command (e.g. `prlimit --nofile=…`).
/// Returns once it listens.
pub fn plain_hub(ns: &Netns, api: &ApiServer, cache: &Path, wrapper: &[&str]) -> Process {
    let command = HubCommand::new(&api.url(), cache)
        .flag("--insecure-addr", PLAIN_HUB)
        .flag("--cache-agents", "kubectl");
    let mut argv: Vec<&str> = wrapper.to_vec();
    argv.push(BIN);
    argv.extend(command.args());
    let mut hub = Process::start(argv[0], &argv[1..], Some(ns)).unwrap();
    hub.wait_for_log(
        &format!("{PLAIN_LISTENING} listen.addr={PLAIN_HUB}"),
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("hub did not listen: {e}\n{}", hub.logs()));
    hub
}
