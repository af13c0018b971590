//! The manifests-directory source with EdgeMesh's gateway examples: the gateway's Snapshot holds
//! their Gateways, VirtualServices and TLS Secret; the agent's holds none of them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod support;

use std::path::Path;

use edgemesh_kube::Inputs;
use edgemesh_kube::source::manifests;
use edgemesh_model::SourceId;
use edgemesh_model::ingress::{StringMatchSpec, TlsMode};
use support::{key, names, publisher};

/// A broken VirtualService next to a good Gateway: the first is skipped, the second loads.
const BROKEN: &str = "apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: broken, namespace: edge}
spec:
  hosts: ['*']
  http:
    - match: [{uri: {prefix: /, exact: /}}]
      route: [{destination: {host: a}}]
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: second, namespace: edge}
spec:
  servers: [{hosts: ['*'], port: {number: 8443, name: tls, protocol: TLS}, tls: {mode: PASSTHROUGH}}]
";

fn directory() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(tmp.path().join(name), text).unwrap();
    write(
        "gateway-tls.yaml",
        include_str!("fixtures/gateway-tls.yaml"),
    );
    write(
        "routes.yaml",
        include_str!("fixtures/virtualservice-routes.yaml"),
    );
    write("broken.yaml", BROKEN);
    // EdgeMesh's route example in a namespace of its own, so its names do not collide.
    std::fs::create_dir(tmp.path().join("route")).unwrap();
    let route = include_str!("fixtures/gateway-route.yaml")
        .replace("    metadata:\n", "    metadata:\n      namespace: route\n");
    write("route/example.yaml", &route);
    tmp
}

fn spawn_manifests(dir: &Path, published: &support::Published, inputs: Inputs) {
    let (root, events) = (dir.to_path_buf(), published.events.clone());
    tokio::spawn(async move { manifests::run(root, events, inputs).await });
}

#[tokio::test]
async fn edgemesh_examples_reach_the_gateways_snapshot() {
    let tmp = directory();
    let published = publisher(SourceId::Manifests, Inputs::Gateway);
    spawn_manifests(tmp.path(), &published, Inputs::Gateway);
    let snapshot = published
        .wait("ingress objects loaded", |s| !s.ingress.is_empty())
        .await;
    let ingress = &snapshot.ingress;
    assert_eq!(
        names(&ingress.gateways),
        [
            "default/edgemesh-gateway",
            "edge/second",
            "route/edgemesh-gateway"
        ]
    );
    assert_eq!(
        names(&ingress.virtual_services),
        [
            "default/edgemesh-gateway-svc",
            "route/edgemesh-gateway-svc",
            "web/shop"
        ],
        "the broken VirtualService is skipped"
    );
    assert_eq!(
        names(&ingress.secrets),
        ["default/gw-secret"],
        "the password Secret is not TLS material"
    );

    let tls = ingress.gateways[&key("default", "edgemesh-gateway")].servers[0]
        .tls
        .clone()
        .expect("the TLS example's server has tls");
    assert_eq!(tls.mode, TlsMode::Mutual);
    assert_eq!(tls.credential_name.as_deref(), Some("gw-secret"));
    let secret = &ingress.secrets[&key("default", "gw-secret")];
    assert!(secret.cert_pem.is_some() && secret.key_pem.is_some());
    let route = &ingress.virtual_services[&key("route", "edgemesh-gateway-svc")];
    assert_eq!(route.hosts, ["hostname.org"]);
    assert_eq!(
        route.http[0].matches[0].uri,
        Some(StringMatchSpec::Prefix("/who".into()))
    );
    assert_eq!(ingress.virtual_services[&key("web", "shop")].http.len(), 4);
}

#[tokio::test]
async fn the_agent_reads_none_of_them() {
    let tmp = directory();
    std::fs::write(
        tmp.path().join("http.yaml"),
        include_str!("fixtures/gateway-http.yaml"),
    )
    .unwrap();
    let published = publisher(SourceId::Manifests, Inputs::Agent);
    spawn_manifests(tmp.path(), &published, Inputs::Agent);
    let snapshot = published
        .wait("the example's Service loaded", |s| !s.services.is_empty())
        .await;
    assert!(snapshot.ingress.is_empty(), "{:?}", snapshot.ingress);
}
