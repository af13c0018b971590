//! Issue acceptance (edge hub, "transparent for pods"): with `modules.edgeProxy.edgeHubAddress`
//! the agent sends the `default/kubernetes` ClusterIP:443 to the hub, so an unmodified client of
//! `https://$KUBERNETES_SERVICE_HOST` reaches the apiserver through the hub. Real agent, real
//! hub, real curl, in a namespace of their own; the apiserver is the test kit's double.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

mod common;
mod hub_support;

use std::time::Duration;

use common::{Agent, service_json, slice_json};
use edgemesh_testkit::process::Process;
use hub_support::{Certs, edge_node_with_api};

const KUBERNETES_IP: &str = "10.96.0.1";
const HUB: &str = "169.254.2.1:10268";

#[test]
fn agent_sends_the_kubernetes_service_to_the_edge_hub() {
    let (ns, api) = edge_node_with_api("hubr");
    let mut kubernetes = service_json("default", "kubernetes", KUBERNETES_IP, 443);
    kubernetes["spec"]["ports"][0]["name"] = "https".into();
    api.apply(kubernetes).unwrap();
    // The apiserver's own address: unreachable from this namespace, as from an edge node.
    let mut slice = slice_json("default", "kubernetes", &["192.0.2.100"], 6443);
    slice["ports"][0]["name"] = "https".into();
    api.apply(slice).unwrap();

    let files = tempfile::tempdir().unwrap();
    // A serving certificate valid for the ClusterIP and the hub address.
    let certs = Certs::new();
    certs.issue(
        "hub",
        "DNS:kubernetes.default.svc,IP:10.96.0.1,IP:169.254.2.1",
    );
    let (cert, key) = (certs.path("hub.crt"), certs.path("hub.key"));
    let cache = files.path().join("cache");
    let hub_args = [
        "hub",
        "--server-addr",
        &api.url(),
        "--cert-file",
        &cert,
        "--key-file",
        &key,
        "--cache-dir",
        cache.to_str().unwrap(),
        "--config-map",
        "",
        "--admin-addr",
        "127.0.0.1:0",
        "--insecure-addr",
        "",
    ];
    let mut hub = Process::start(env!("CARGO_BIN_EXE_edgemesh"), &hub_args, Some(&ns)).unwrap();
    hub.wait_for_log("169.254.2.1:10268", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("hub did not listen: {e}\n{}", hub.logs()));

    let config = files.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n\
             modules:\n  edgeProxy:\n    enable: true\n    edgeHubAddress: {HUB}\n"
        ),
    )
    .unwrap();
    let agent = Agent::start(
        ns,
        &["--config", config.to_str().unwrap(), "--master", &api.url()],
    )
    .ready();

    // What a pod does with InClusterConfig: https://$KUBERNETES_SERVICE_HOST:443.
    let url = format!("https://{KUBERNETES_IP}/api/v1/namespaces/default/services");
    let out = agent
        .netns
        .exec(
            "curl",
            &["-sS", "-k", "--max-time", "5", "-A", "probe/1.0", &url],
        )
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && body.contains("\"kubernetes\""),
        "{}\n{body}\n--- hub:\n{}\n--- agent:\n{}",
        String::from_utf8_lossy(&out.stderr),
        hub.logs(),
        agent.process.logs()
    );
    assert!(
        hub.logs().contains("/api/v1/namespaces/default/services"),
        "the request went through the hub:\n{}",
        hub.logs()
    );
}
