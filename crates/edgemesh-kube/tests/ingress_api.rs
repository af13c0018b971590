//! The Kubernetes API source against the apiserver test double: the gateway watches Gateways,
//! VirtualServices and Secrets and follows their changes; the agent never asks for them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod support;

use edgemesh_kube::source::api::{self, EndpointsApi};
use edgemesh_kube::{Inputs, client};
use edgemesh_model::SourceId;
use edgemesh_testkit::apiserver::ApiServer;
use serde_json::{Value, json};
use support::{Published, key, names, publisher};

const ISTIO: &str = "networking.istio.io/v1alpha3";

fn gateway(namespace: &str, name: &str, port: u16) -> Value {
    json!({"apiVersion": ISTIO, "kind": "Gateway",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"selector": {"kubeedge": "edgemesh-gateway"},
                    "servers": [{"hosts": ["*"],
                                 "port": {"name": "http-0", "number": port, "protocol": "HTTP"}}]}})
}

fn virtual_service(namespace: &str, name: &str, prefix: &str) -> Value {
    json!({"apiVersion": ISTIO, "kind": "VirtualService",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"gateways": ["edgemesh-gateway"], "hosts": ["*"],
                    "http": [{"match": [{"uri": {"prefix": prefix}}],
                              "route": [{"destination": {"host": "hostname-lb-svc",
                                                         "port": {"number": 12345}}}]}]}})
}

fn secret(namespace: &str, name: &str, type_: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": namespace}, "type": type_, "data": data})
}

/// EdgeMesh's TLS example objects, a Secret that is not TLS material and a broken
/// VirtualService.
fn seed(api: &ApiServer) {
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "hostname-lb-svc", "namespace": "default"},
                     "spec": {"clusterIP": "10.96.0.20",
                              "ports": [{"name": "http-0", "port": 12345, "targetPort": 9376}]}}))
        .unwrap();
    api.apply(gateway("default", "edgemesh-gateway", 23333))
        .unwrap();
    api.apply(virtual_service("default", "edgemesh-gateway-svc", "/"))
        .unwrap();
    let tls = json!({"tls.crt": "Y2VydA==", "tls.key": "a2V5"});
    api.apply(secret("default", "gw-secret", "kubernetes.io/tls", tls))
        .unwrap();
    let password = json!({"password": "c2VjcmV0"});
    api.apply(secret("default", "db", "Opaque", password))
        .unwrap();
    api.apply(json!({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "web-v2", "namespace": "default",
                                  "labels": {"app": "web", "version": "v2"}},
                     "spec": {"containers": [{"name": "web", "image": "web"}]},
                     "status": {"podIP": "10.244.1.7"}}))
        .unwrap();
    api.apply(json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
                     "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"host": "web", "subsets": [{"name": "v2", "labels": {"version": "v2"}}]}}))
        .unwrap();
    let mut broken = virtual_service("default", "broken", "/");
    broken["spec"]["http"][0]["match"][0]["uri"] = json!({"exact": "/", "prefix": "/"});
    api.apply(broken).unwrap();
}

fn watch(api: &ApiServer, inputs: Inputs) -> Published {
    let published = publisher(SourceId::KubeApi, inputs);
    let client = client::from_url(&api.url()).unwrap();
    let events = published.events.clone();
    tokio::spawn(api::run(client, events, EndpointsApi::Discover, inputs));
    published
}

fn requested(api: &ApiServer, resource: &str) -> bool {
    api.requests().iter().any(|r| r.contains(resource))
}

#[tokio::test]
async fn the_gateway_watches_its_kinds_and_follows_changes() {
    let api = ApiServer::start().unwrap();
    seed(&api);
    let published = watch(&api, Inputs::Gateway);
    let snapshot = published
        .wait("ingress listed", |s| !s.ingress.secrets.is_empty())
        .await;
    let ingress = &snapshot.ingress;
    assert_eq!(names(&ingress.gateways), ["default/edgemesh-gateway"]);
    assert_eq!(
        names(&ingress.virtual_services),
        ["default/edgemesh-gateway-svc"],
        "the broken one is skipped"
    );
    assert_eq!(names(&ingress.secrets), ["default/gw-secret"]);
    let gw_secret = &ingress.secrets[&key("default", "gw-secret")];
    assert_eq!(gw_secret.cert_pem.as_deref(), Some(&b"cert"[..]));
    assert_eq!(snapshot.services.len(), 1, "the agent's kinds too");
    // Subsets: the DestinationRule's subsets and the Pods' labels and addresses.
    let pod = &ingress.pods[&key("default", "web-v2")];
    assert_eq!(pod.ip, Some("10.244.1.7".parse().unwrap()));
    assert_eq!(pod.labels["version"], "v2");
    let rule = &ingress.destination_rules[&key("default", "web")];
    assert_eq!(
        (rule.host.as_str(), rule.subsets[0].name.as_str()),
        ("web", "v2")
    );
    for path in [
        "/api/v1/pods",
        "/apis/networking.istio.io/v1beta1/gateways",
        "/apis/networking.istio.io/v1beta1/virtualservices",
        "/api/v1/secrets",
    ] {
        assert!(requested(&api, path), "{path}: {:?}", api.requests());
    }

    api.apply(virtual_service("edge", "later", "/later"))
        .unwrap();
    api.apply(gateway("default", "edgemesh-gateway", 24444))
        .unwrap();
    api.delete("v1", "Secret", "default", "gw-secret").unwrap();
    api.apply(secret("default", "ca", "Opaque", json!({"ca.crt": "Y2E="})))
        .unwrap();
    published
        .wait("changes followed", |s| {
            let i = &s.ingress;
            i.virtual_services.contains_key(&key("edge", "later"))
                && i.gateways[&key("default", "edgemesh-gateway")].servers[0].port == 24444
                && names(&i.secrets) == ["default/ca"]
        })
        .await;
    // A Secret losing its TLS keys is no longer ours: it leaves the Snapshot.
    api.apply(secret("default", "ca", "Opaque", json!({"other": "eA=="})))
        .unwrap();
    published
        .wait("a Secret without TLS keys dropped", |s| {
            s.ingress.secrets.is_empty()
        })
        .await;
}

#[tokio::test]
async fn the_agent_never_asks_for_ingress_kinds() {
    let api = ApiServer::start().unwrap();
    seed(&api);
    let published = watch(&api, Inputs::Agent);
    let snapshot = published
        .wait("agent ready", |s| !s.services.is_empty())
        .await;
    assert!(snapshot.ingress.gateways.is_empty() && snapshot.ingress.secrets.is_empty());
    for resource in ["secrets", "gateways", "virtualservices", "/pods"] {
        assert!(
            !requested(&api, resource),
            "{resource}: {:?}",
            api.requests()
        );
    }
    assert!(requested(&api, "destinationrules"), "{:?}", api.requests());
}

#[tokio::test]
async fn the_gateway_is_ready_without_secrets_it_may_not_read_or_istio() {
    let api = ApiServer::builder()
        .forbid("secrets")
        .istio(false)
        .start()
        .unwrap();
    api.apply(json!({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"clusterIP": "10.96.0.21", "ports": [{"port": 80}]}}))
        .unwrap();
    let published = watch(&api, Inputs::Gateway);
    let snapshot = published
        .wait("ready without them", |s| !s.services.is_empty())
        .await;
    assert!(snapshot.ingress.is_empty());
    assert!(requested(&api, "/api/v1/secrets"), "{:?}", api.requests());
}
