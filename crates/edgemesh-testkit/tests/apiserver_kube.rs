//! Faithfulness check: the real kube-rs client and watcher against the apiserver test double.
// Test helpers: a failed set-up step should panic with its error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use edgemesh_testkit::apiserver::{ApiServer, ISTIO_GROUP};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

const STEP: Duration = Duration::from_secs(15);

fn client(server: &ApiServer) -> kube::Client {
    // rustls cannot pick a default crypto provider when the workspace links two (see
    // edgemesh_kube::client::use_ring_for_tls).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(server.url().parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

fn service(name: &str, port: u16) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
           "spec": {"ports": [{"port": port}]}})
}

/// A watcher event reduced to what the assertions need: ("Init" | "InitApply" | "InitDone" |
/// "Apply" | "Delete", name).
type Seen = (&'static str, String);

async fn next(
    stream: &mut (impl Stream<Item = watcher::Result<watcher::Event<Service>>> + Unpin),
) -> Seen {
    loop {
        let item = tokio::time::timeout(STEP, stream.next())
            .await
            .expect("no watcher event in time");
        let event = match item.expect("watcher stream ended") {
            Ok(event) => event,
            // Cut connections and 410s surface as errors; the watcher recovers by itself.
            Err(_) => continue,
        };
        let name = |s: &Service| s.metadata.name.clone().unwrap_or_default();
        return match event {
            watcher::Event::Init => ("Init", String::new()),
            watcher::Event::InitApply(s) => ("InitApply", name(&s)),
            watcher::Event::InitDone => ("InitDone", String::new()),
            watcher::Event::Apply(s) => ("Apply", name(&s)),
            watcher::Event::Delete(s) => ("Delete", name(&s)),
        };
    }
}

async fn expect(
    stream: &mut (impl Stream<Item = watcher::Result<watcher::Event<Service>>> + Unpin),
    want: &[(&str, &str)],
) {
    for (kind, name) in want {
        let seen = next(stream).await;
        assert_eq!((seen.0, seen.1.as_str()), (*kind, *name));
    }
}

#[tokio::test]
async fn kube_watcher_sees_changes_resumes_after_cuts_and_relists_after_compaction() {
    // Long bookmark interval: no bookmark may slip in between compact() and cut_watches().
    let server = ApiServer::builder()
        .bookmark_interval(Duration::from_secs(600))
        .start()
        .unwrap();
    server.apply(service("a", 80)).unwrap();
    let api: Api<Service> = Api::all(client(&server));
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    expect(
        &mut stream,
        &[("Init", ""), ("InitApply", "a"), ("InitDone", "")],
    )
    .await;

    server.apply(service("b", 80)).unwrap();
    expect(&mut stream, &[("Apply", "b")]).await;
    server.apply(service("a", 81)).unwrap();
    expect(&mut stream, &[("Apply", "a")]).await;
    server.delete("v1", "Service", "default", "b").unwrap();
    expect(&mut stream, &[("Delete", "b")]).await;

    // A cut stream resumes from the last version seen: the change made while no watch was
    // open arrives, and there is no relist.
    server.cut_watches();
    server.apply(service("c", 80)).unwrap();
    expect(&mut stream, &[("Apply", "c")]).await;
    let rewatches = server
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    assert!(rewatches >= 2, "{:?}", server.requests());

    // After compaction the old version is gone: 410 Expired, and the watcher lists again.
    server.compact();
    server.cut_watches();
    expect(
        &mut stream,
        &[
            ("Init", ""),
            ("InitApply", "a"),
            ("InitApply", "c"),
            ("InitDone", ""),
        ],
    )
    .await;
    server.apply(service("d", 80)).unwrap();
    expect(&mut stream, &[("Apply", "d")]).await;
}

#[tokio::test]
async fn kube_api_crud_gets_upstream_status_codes() {
    let server = ApiServer::start().unwrap();
    let api: Api<Service> = Api::namespaced(client(&server), "prod");
    let svc: Service = serde_json::from_value(service("web", 80)).unwrap();
    let mut svc_prod = svc.clone();
    svc_prod.metadata.namespace = Some("prod".into());
    let created = api.create(&PostParams::default(), &svc_prod).await.unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let again = api
        .create(&PostParams::default(), &svc_prod)
        .await
        .unwrap_err();
    assert!(
        matches!(&again, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{again:?}"
    );

    let mut stale = created.clone();
    server.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "prod"}, "spec": {"ports": [{"port": 81}]}})).unwrap();
    stale.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 82;
    let conflict = api
        .replace("web", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(&conflict, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{conflict:?}"
    );

    let fresh = api.get("web").await.unwrap();
    assert_eq!(fresh.spec.unwrap().ports.unwrap()[0].port, 81);
    api.delete("web", &DeleteParams::default()).await.unwrap();
    let missing = api.get("web").await.unwrap_err();
    assert!(
        matches!(&missing, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"),
        "{missing:?}"
    );
    assert_eq!(api.get_opt("web").await.unwrap(), None);
}

#[tokio::test]
async fn kube_discovery_matches_what_is_served() {
    let full = ApiServer::start().unwrap();
    let discovery = kube::Discovery::new(client(&full)).run().await.unwrap();
    assert!(discovery.has_group(ISTIO_GROUP));
    assert!(discovery.has_group("discovery.k8s.io"));
    let istio = discovery.get(ISTIO_GROUP).unwrap();
    assert_eq!(istio.preferred_version_or_latest(), "v1beta1");
    let version = client(&full).apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");

    let bare = ApiServer::builder()
        .istio(false)
        .endpointslices(false)
        .start()
        .unwrap();
    let discovery = kube::Discovery::new(client(&bare)).run().await.unwrap();
    assert!(!discovery.has_group(ISTIO_GROUP));
    assert!(!discovery.has_group("discovery.k8s.io"));
    assert!(discovery.has_group(""));
}

#[tokio::test]
async fn kube_watcher_honours_label_selectors_and_transitions() {
    let server = ApiServer::start().unwrap();
    let labelled = |name: &str, app: &str| {
        let mut s = service(name, 80);
        s["metadata"]["labels"] = json!({"app": app});
        s
    };
    server.apply(labelled("a", "web")).unwrap();
    server.apply(labelled("b", "db")).unwrap();
    let api: Api<Service> = Api::all(client(&server));
    let config = watcher::Config::default().labels("app=web");
    let mut stream = watcher(api, config).boxed();
    expect(
        &mut stream,
        &[("Init", ""), ("InitApply", "a"), ("InitDone", "")],
    )
    .await;
    // b starts matching: ADDED; a stops matching: DELETED.
    server.apply(labelled("b", "web")).unwrap();
    expect(&mut stream, &[("Apply", "b")]).await;
    server.apply(labelled("a", "db")).unwrap();
    expect(&mut stream, &[("Delete", "a")]).await;
}

#[tokio::test]
async fn kube_merge_patches_and_status_subresource() {
    let server = ApiServer::start().unwrap();
    server
        .apply(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "edge-1", "labels": {"a": "1"}}, "spec": {}}))
        .unwrap();
    let nodes: Api<Node> = Api::all(client(&server));
    let patch = json!({"metadata": {"labels": {"b": "2"}}, "status": {"phase": "ignored"}});
    let patched = nodes
        .patch_status("edge-1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let labels = patched.metadata.labels.unwrap();
    assert!(
        !labels.contains_key("b"),
        "a status patch leaves metadata alone"
    );
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("ignored"));
    let patched = nodes
        .patch("edge-1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let labels = patched.metadata.labels.unwrap();
    assert_eq!((labels["a"].as_str(), labels["b"].as_str()), ("1", "2"));
    let json_patch = Patch::<Node>::Json(serde_json::from_value(json!([])).unwrap());
    let err = nodes
        .patch("edge-1", &PatchParams::default(), &json_patch)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 415),
        "{err:?}"
    );
}
