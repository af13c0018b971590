//! Shared helpers of the binary's integration tests: a real `edgemesh agent` in a network
//! namespace of its own, so the netfilter rules and links it creates never touch the host.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::Process;
use serde_json::Value;

pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A manifest: Service `shop/web`, ClusterIP 10.96.0.10, port `http` 80/TCP.
pub const WEB_SERVICE: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, protocol: TCP}]
";

/// A manifest: EndpointSlice `shop/SERVICE-x` of Service `shop/SERVICE`, with `port` and
/// `endpoints` as YAML flow mappings.
pub fn shop_slice(service: &str, port: &str, endpoints: &[&str]) -> String {
    let mut yaml = format!(
        "
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {service}-x, namespace: shop, labels: {{kubernetes.io/service-name: {service}}}}}
addressType: IPv4
ports: [{port}]
endpoints:
"
    );
    for endpoint in endpoints {
        yaml.push_str(&format!("  - {endpoint}\n"));
    }
    yaml
}

/// An agent process and the namespace it runs in (the namespace outlives the process).
pub struct Agent {
    pub process: Process,
    pub netns: Netns,
    /// `--state-dir` (the tunnel's key): never the host's /var/lib/edgemesh.
    pub state: tempfile::TempDir,
}

impl Agent {
    /// Starts `edgemesh agent ARGS --admin-addr 127.0.0.1:0 --node-name test-node` in `netns`,
    /// with a state directory of its own.
    pub fn start(netns: Netns, args: &[&str]) -> Agent {
        Agent::start_with_env(netns, args, &[])
    }

    /// [`Agent::start`] with extra environment variables.
    pub fn start_with_env(netns: Netns, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let state = tempfile::tempdir().unwrap();
        let state_dir = state.path().to_str().unwrap().to_owned();
        let mut all = vec![
            "agent",
            "--admin-addr",
            "127.0.0.1:0",
            "--node-name",
            "test-node",
            "--state-dir",
            &state_dir,
        ];
        all.extend_from_slice(args);
        let process = Process::start_with(env!("CARGO_BIN_EXE_edgemesh"), &all, Some(&netns), env)
            .expect("start edgemesh");
        Agent {
            process,
            netns,
            state,
        }
    }

    /// Waits for /readyz, printing the agent's log if it never comes.
    pub fn ready(mut self) -> Agent {
        if let Err(e) = self.process.wait_ready(READY_TIMEOUT) {
            panic!(
                "agent not ready: {e}\n--- agent log:\n{}",
                self.process.logs()
            );
        }
        self
    }

    pub fn snapshot(&self) -> Value {
        let (status, body) = self
            .process
            .http_get("/debug/snapshot")
            .expect("GET /debug/snapshot");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("snapshot is JSON")
    }

    /// Polls the snapshot until `check` holds; returns how long it took. Fails with the last
    /// snapshot and the log after `timeout`.
    pub fn wait_snapshot(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let snapshot = self.snapshot();
            if check(&snapshot) {
                return started.elapsed();
            }
            if started.elapsed() > timeout {
                panic!(
                    "{what}: not seen within {timeout:?}\n--- snapshot:\n{snapshot:#}\n--- agent log:\n{}",
                    self.process.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }
}

/// A fresh namespace with loopback up; fails (never skips) without root.
pub fn netns(tag: &str) -> Netns {
    require_root();
    Netns::new(tag).expect("create network namespace")
}

/// Backend addresses of the first port of `ns/name`, sorted.
pub fn backends(snapshot: &Value, key: &str) -> Vec<String> {
    port_backends(snapshot, key, 0)
}

/// Backend addresses of port `port_index` of `ns/name`, sorted.
pub fn port_backends(snapshot: &Value, key: &str, port_index: usize) -> Vec<String> {
    let mut out: Vec<String> = snapshot["services"][key]["ports"][port_index]["backends"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(|b| b["addr"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub fn has_service(snapshot: &Value, key: &str) -> bool {
    snapshot["services"].get(key).is_some()
}

pub fn service_json(namespace: &str, name: &str, cluster_ip: &str, port: u16) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}
    })
}

pub fn slice_json(namespace: &str, service: &str, ips: &[&str], port: u16) -> Value {
    let endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| serde_json::json!({"addresses": [ip], "nodeName": "node-a", "conditions": {"ready": true}}))
        .collect();
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abc"), "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints
    })
}

/// The apiserver double inside `ns`, with bookmarks effectively off: none may refresh a
/// watcher's resourceVersion between a compaction (or restart) and the cut, or no 410 comes.
pub fn api_without_bookmarks(ns: &Netns) -> edgemesh_testkit::apiserver::ApiServer {
    edgemesh_testkit::apiserver::ApiServer::builder()
        .bookmark_interval(Duration::from_secs(3600))
        .start_in(ns)
        .unwrap()
}
