//! The real `edgemesh gateway` in the node namespace of a [`Cluster`], reading its manifests
//! directory, and what the gateway tests ask of its `/debug/routes`.

use std::path::Path;
use std::time::Duration;

use edgemesh_testkit::process::Process;

use super::{Cluster, NODE_NAME};

pub const READY: Duration = Duration::from_secs(20);

/// EdgeMesh's shipped gateway ConfigMap content (`build/gateway/resources/04-configmap.yaml`),
/// the tunnel off (no peers in this test).
const GATEWAY_CONFIG: &str =
    "modules:\n  edgeGateway:\n    enable: true\n  edgeTunnel:\n    enable: false\n";

pub struct Gateway {
    pub process: Process,
}

impl Gateway {
    /// `edgemesh-gateway`'s command line as EdgeMesh's Deployment runs it, with a manifests
    /// directory instead of an API server.
    pub fn start(cluster: &Cluster, files: &Path) -> Gateway {
        let config = files.join("edgemesh-gateway.yaml");
        std::fs::write(&config, GATEWAY_CONFIG).unwrap();
        let manifests = cluster.manifests.path().to_str().unwrap().to_string();
        let args = [
            "gateway",
            "--config-file",
            config.to_str().unwrap(),
            "--manifests",
            &manifests,
            "--node-name",
            NODE_NAME,
            "--admin-addr",
            "127.0.0.1:0",
        ];
        let mut process = Process::start_with(
            env!("CARGO_BIN_EXE_edgemesh"),
            &args,
            Some(cluster.node.netns()),
            &[],
        )
        .expect("start edgemesh gateway");
        if let Err(e) = process.wait_ready(READY) {
            panic!("gateway not ready: {e}\n{}", process.logs());
        }
        Gateway { process }
    }

    pub fn routes(&self) -> serde_json::Value {
        let (status, body) = self.process.http_get("/debug/routes").unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until `/debug/routes` satisfies `check` (the manifests are watched live).
    pub fn wait_routes(&self, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        super::wait_until(what, READY, || {
            let routes = self.routes();
            check(&routes) && !routes["listening"].as_array().unwrap().is_empty()
        })
        .unwrap_or_else(|e| panic!("{e}\n{:#}\n{}", self.routes(), self.process.logs()));
    }
}

pub fn listens_on(routes: &serde_json::Value, port: u16) -> bool {
    routes["listening"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().ends_with(&format!(":{port}")))
}
