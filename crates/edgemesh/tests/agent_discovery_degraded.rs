//! Issue #12 acceptance: the agent as EdgeMesh's manifests deploy it, against servers that say
//! "no": KubeEdge's metaServer (500 for API discovery, no EndpointSlices, HTTPS with a client
//! certificate) and a kube-apiserver whose RBAC forbids EndpointSlices and Nodes (EdgeMesh's
//! own ClusterRole, here also forbidding DestinationRules). Both times the agent is ready within 2 s and a ClusterIP connection made in
//! the node's namespace reaches the pod named by core Endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use datapath_support::{Backend, Cluster, NodeAgent, common};
use edgemesh_testkit::apiserver::{ApiServer, Builder, Https};
use edgemesh_testkit::netns::Netns;
use edgemesh_testkit::tls::Certs;
use serde_json::{Value, json};

const WEB: &str = "10.96.0.10";
/// The acceptance bound, from the agent's start to /readyz 200.
const READY_WITHIN: Duration = Duration::from_secs(2);
/// An empty value counts as unset: the agent must choose the metaServer, never in-cluster.
const NOT_IN_A_POD: [(&str, &str); 1] = [("KUBERNETES_SERVICE_HOST", "")];

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": WEB, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    })
}

fn endpoints(ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [{"addresses": [{"ip": ip, "nodeName": datapath_support::NODE_NAME}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]
    })
}

/// An EndpointSlice that would send traffic nowhere (no such address): used only if the agent
/// read slices it must not read.
fn decoy_slice() -> Value {
    common::slice_json("shop", "web", &["203.0.113.99"], 8080)
}

/// A DestinationRule for `web` in `api_version` (EdgeMesh's informer reads v1alpha3).
fn hash_rule(api_version: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": "DestinationRule",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"host": "web", "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": "X-User"}}}}
    })
}

fn lb_policy(agent: &NodeAgent) -> Value {
    agent.snapshot()["services"]["shop/web"]["lbPolicy"].clone()
}

/// The double, listening on 127.0.0.1 inside `netns`, holding the service and its endpoints.
fn api_in(netns: &Netns, builder: Builder, pod_ip: &str) -> ApiServer {
    let listener = netns
        .run(|| TcpListener::bind("127.0.0.1:0"))
        .expect("bind in netns");
    let api = builder
        .start_on(listener)
        .expect("start the apiserver double");
    api.apply(service()).unwrap();
    api.apply(endpoints(pod_ip)).unwrap();
    api
}

/// The metaServer's certificates as `metaServerSecret` holds them, and the double's own.
struct MetaServerCerts {
    certs: Certs,
}

impl MetaServerCerts {
    fn new() -> MetaServerCerts {
        let certs = Certs::new();
        certs.issue("metaserver", "IP:127.0.0.1");
        certs.issue("edge-node", "DNS:edge-node");
        MetaServerCerts { certs }
    }

    fn https(&self, require_client_cert: bool) -> Https {
        Https {
            cert: self.certs.path("metaserver.crt").into(),
            key: self.certs.path("metaserver.key").into(),
            client_ca: Some(self.certs.path("ca.crt").into()),
            require_client_cert,
        }
    }
}

/// An EdgeMesh config file: `kubeAPIConfig.metaServer` with `security`, proxy on, DNS off.
fn meta_server_config(dir: &tempfile::TempDir, addr: &str, security: &str) -> String {
    let body = format!(
        "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n\
         kubeAPIConfig:\n  metaServer:\n    server: http://{addr}\n    security:\n{security}\
         modules:\n  edgeDNS:\n    enable: false\n  edgeProxy:\n    enable: true\n    backend: nftables\n"
    );
    let path = dir.path().join("edgemesh-agent.yaml");
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_owned()
}

fn security(insecure: bool, ca: &str, cert: &str, key: &str) -> String {
    format!(
        "      requireAuthorization: true\n      insecureSkipTLSVerify: {insecure}\n      \
         tlsCaFile: {ca}\n      tlsCertFile: {cert}\n      tlsPrivateKeyFile: {key}\n"
    )
}

/// Starts the agent and checks the acceptance bound; returns it once its rules are in.
fn start_ready(cluster: &Cluster, args: &[&str]) -> NodeAgent {
    let started = Instant::now();
    let agent = cluster.start_agent_with(Backend::Nftables, args, &NOT_IN_A_POD);
    let took = started.elapsed();
    eprintln!("agent ready {took:?} after its start");
    assert!(
        took < READY_WITHIN,
        "ready after {took:?}\n--- agent log:\n{}",
        agent.logs()
    );
    agent.wait_rules_installed();
    agent
}

fn assert_web_reaches(cluster: &Cluster, agent: &NodeAgent, pod: &str) {
    let answer = cluster.curl(&format!("http://{WEB}/"), &[]);
    assert_eq!(
        answer.as_deref(),
        Ok(pod),
        "--- agent log:\n{}",
        agent.logs()
    );
}

#[test]
fn metaserver_over_https_with_a_client_certificate_serves_core_endpoints() {
    let cluster = Cluster::new("msrv", 1);
    let certs = MetaServerCerts::new();
    let builder = ApiServer::builder()
        .meta_server()
        .endpointslices(false)
        .https(certs.https(true));
    let api = api_in(cluster.node.netns(), builder, &cluster.pods[0].ip);
    api.apply(hash_rule("networking.istio.io/v1alpha3"))
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let c = &certs.certs;
    let keys = security(
        false,
        &c.path("ca.crt"),
        &c.path("edge-node.crt"),
        &c.path("edge-node.key"),
    );
    let config = meta_server_config(&files, &api.addr().to_string(), &keys);
    let agent = start_ready(&cluster, &["--config", &config]);

    assert_web_reaches(&cluster, &agent, "pod-a");
    // Discovery refused, the rules are watched in v1alpha3 directly, as EdgeMesh does.
    assert_eq!(lb_policy(&agent)["consistentHash"]["httpHeader"], "x-user");
    let logs = agent.logs();
    assert!(
        logs.contains("KubeEdge metaServer: watching core Endpoints, as EdgeMesh does"),
        "{logs}"
    );
    assert!(api.tls_errors().is_empty(), "{:?}", api.tls_errors());
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /api/v1/endpoints")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("/endpointslices")),
        "{requests:?}"
    );
}

#[test]
fn rbac_forbidding_slices_nodes_and_rules_falls_back_to_endpoints_and_round_robin() {
    let cluster = Cluster::new("rbac", 1);
    let builder = ApiServer::builder()
        .forbid("endpointslices")
        .forbid("nodes")
        .forbid("destinationrules");
    let api = api_in(cluster.node.netns(), builder, &cluster.pods[0].ip);
    api.apply(decoy_slice()).unwrap();
    api.apply(hash_rule("networking.istio.io/v1beta1")).unwrap();
    let agent = start_ready(&cluster, &["--master", &api.url()]);

    assert_web_reaches(&cluster, &agent, "pod-a");
    // A refused watch is not retried: give a retry the time it would take to show.
    std::thread::sleep(Duration::from_secs(2));
    let logs = agent.logs();
    let grant = "grant system:serviceaccount:kubeedge:edgemesh-agent get, list and watch on endpointslices in API group discovery.k8s.io";
    assert_eq!(
        logs.matches("EndpointSlices cannot be listed").count(),
        1,
        "{logs}"
    );
    assert_eq!(logs.matches(grant).count(), 1, "{logs}");
    assert_eq!(logs.matches("Nodes cannot be listed").count(), 1, "{logs}");
    assert!(logs.contains("on nodes (core API group)"), "{logs}");
    let rules = logs
        .lines()
        .filter(|l| l.contains("Istio kind cannot be listed") && l.contains("kind=DestinationRule"))
        .count();
    assert_eq!(rules, 1, "{logs}");
    assert!(
        logs.contains("on destinationrules in API group networking.istio.io"),
        "{logs}"
    );
    assert_eq!(lb_policy(&agent), "roundRobin");
    let slice_lists = api
        .requests()
        .iter()
        .filter(|r| r.contains("/endpointslices"))
        .count();
    assert_eq!(slice_lists, 1, "one refused list, no retries");
}

#[test]
fn insecure_skip_tls_verify_accepts_a_foreign_ca_and_without_it_the_log_says_why() {
    let certs = MetaServerCerts::new();
    let foreign = Certs::new();
    let c = &certs.certs;
    // Like KubeEdge's metaServer: a client certificate is checked when given, not required.
    let run = |insecure: bool| {
        let ns = common::netns(if insecure { "insec" } else { "wrongca" });
        let builder = ApiServer::builder().meta_server().endpointslices(false);
        let api = api_in(&ns, builder.https(certs.https(false)), "192.0.2.11");
        let files = tempfile::tempdir().unwrap();
        let keys = security(
            insecure,
            &foreign.path("ca.crt"),
            &c.path("edge-node.crt"),
            &c.path("edge-node.key"),
        );
        let config = meta_server_config(&files, &api.addr().to_string(), &keys);
        let agent = common::Agent::start_with_env(ns, &["--config", &config], &NOT_IN_A_POD);
        (agent, api, files)
    };

    let (agent, _api, _files) = run(true);
    let started = Instant::now();
    let agent = agent.ready();
    assert!(started.elapsed() < READY_WITHIN, "{}", agent.logs());
    assert_eq!(
        common::backends(&agent.snapshot(), "shop/web"),
        ["192.0.2.11:8080"]
    );
    assert!(
        agent.logs().contains("insecureSkipTLSVerify"),
        "{}",
        agent.logs()
    );
    drop(agent);

    let (mut agent, api, _files) = run(false);
    // Both test CAs have the same subject, so rustls says BadSignature (else UnknownIssuer).
    agent
        .process
        .wait_for_log("invalid peer certificate", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n--- agent log:\n{}", agent.logs()));
    let logs = agent.logs();
    let ca = foreign.path("ca.crt");
    assert!(logs.contains(&format!("tlsCaFile={ca}")), "{logs}");
    agent.process.admin_addr(Duration::from_secs(5)).unwrap();
    let (status, body) = agent.process.http_get("/readyz").unwrap();
    assert_eq!(status, 503, "never ready against a server it cannot trust");
    // One line per component, naming what the sources still owe.
    assert!(
        body.contains("[-]sources failed: waiting for the first complete list of kube-api Service"),
        "{body}"
    );
    assert!(body.ends_with("not ready\n"), "{body}");
    assert!(
        !api.tls_errors().is_empty(),
        "the double saw the failed handshakes"
    );
}
