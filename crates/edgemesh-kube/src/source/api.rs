//! The Kubernetes API source: one kube-runtime watcher per kind.
//!
//! Watchers buffer the initial list and report it whole at `InitDone` (a relist replaces the
//! previous view atomically, so a reconnect never exposes half a list); afterwards each event is
//! forwarded as it comes. Discovery decides between EndpointSlices and core Endpoints, and whether
//! the Istio DestinationRule CRD exists; a cluster without it works, with one log line.

use std::fmt::Debug;
use std::time::Duration;

use edgemesh_model::{Resource, ResourceKind, ResourceRef, SourceId};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource as KubeResource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::convert::{self, InvalidObject, object_key};
use crate::publisher::SourceEvent;

const ISTIO_GROUP: &str = "networking.istio.io";
const ISTIO_VERSIONS: [&str; 2] = ["v1beta1", "v1alpha3"];
const DISCOVERY_RETRY: Duration = Duration::from_secs(2);

type Events = mpsc::Sender<SourceEvent>;

/// Starts every watcher; returns when `events` is closed.
pub async fn run(client: Client, events: Events) {
    let use_slices =
        retry_discovery(|| serves(&client, "discovery.k8s.io/v1", "endpointslices")).await;
    let istio_version = istio_version(&client).await;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch(
        Api::<Service>::all(client.clone()),
        ResourceKind::Service,
        events.clone(),
        |s| convert::service(s).map(Resource::Service),
    ));
    tasks.spawn(watch(
        Api::<Node>::all(client.clone()),
        ResourceKind::Node,
        events.clone(),
        |n| convert::node(n).map(Resource::Node),
    ));
    if use_slices {
        not_served(&events, ResourceKind::Endpoints).await;
        tasks.spawn(watch(
            Api::<EndpointSlice>::all(client.clone()),
            ResourceKind::EndpointSlice,
            events.clone(),
            |s| convert::endpoint_slice(s).map(Resource::EndpointSlice),
        ));
    } else {
        tracing::info!(
            "the API server does not serve discovery.k8s.io/v1 EndpointSlices; watching core Endpoints"
        );
        not_served(&events, ResourceKind::EndpointSlice).await;
        tasks.spawn(watch(
            Api::<Endpoints>::all(client.clone()),
            ResourceKind::Endpoints,
            events.clone(),
            |e| convert::endpoints(e).map(Resource::Endpoints),
        ));
    }
    match istio_version {
        Some(version) => {
            let gvk = GroupVersionKind::gvk(ISTIO_GROUP, version, "DestinationRule");
            let resource = ApiResource::from_gvk_with_plural(&gvk, "destinationrules");
            let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
            tasks.spawn(watch_dynamic(api, events.clone()));
        }
        None => {
            tracing::info!(
                "Istio DestinationRule CRD not installed; every service uses round robin"
            );
            not_served(&events, ResourceKind::DestinationRule).await;
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn not_served(events: &Events, kind: ResourceKind) {
    let _ = events
        .send(SourceEvent::NotServed(SourceId::KubeApi, kind))
        .await;
}

/// Whether `api_version` serves `plural`; Err when the server could not be asked.
async fn serves(client: &Client, api_version: &str, plural: &str) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(api_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

async fn istio_version(client: &Client) -> Option<&'static str> {
    for version in ISTIO_VERSIONS {
        let api_version = format!("{ISTIO_GROUP}/{version}");
        if retry_discovery(|| serves(client, &api_version, "destinationrules")).await {
            return Some(version);
        }
    }
    None
}

/// Discovery must get an answer before watchers start: retry (logging) until the server answers.
async fn retry_discovery<F, Fut>(mut ask: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, kube::Error>>,
{
    loop {
        match ask().await {
            Ok(answer) => return answer,
            Err(e) => {
                tracing::warn!("API discovery failed, retrying in {DISCOVERY_RETRY:?}: {e}");
                tokio::time::sleep(DISCOVERY_RETRY).await;
            }
        }
    }
}

async fn watch<K, F>(api: Api<K>, kind: ResourceKind, events: Events, convert: F)
where
    K: KubeResource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(&K) -> Result<Resource, InvalidObject>,
{
    let namespaced = kind != ResourceKind::Node;
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    forward(
        stream,
        kind,
        events,
        |o: &K| convert(o),
        |o: &K| object_key(o.meta(), namespaced),
    )
    .await;
}

async fn watch_dynamic(api: Api<DynamicObject>, events: Events) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let convert = |o: &DynamicObject| {
        let value = serde_json::to_value(o).unwrap_or_default();
        convert::destination_rule(&value).map(Resource::DestinationRule)
    };
    forward(
        stream,
        ResourceKind::DestinationRule,
        events,
        convert,
        |o| object_key(&o.metadata, true),
    )
    .await;
}

/// Turns watcher events into source events. Invalid objects are logged and treated as absent.
async fn forward<K, S, C, KeyOf>(
    stream: S,
    kind: ResourceKind,
    events: Events,
    convert: C,
    key_of: KeyOf,
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
    C: Fn(&K) -> Result<Resource, InvalidObject>,
    KeyOf: Fn(&K) -> edgemesh_model::ObjectKey,
{
    let mut stream = std::pin::pin!(stream);
    let mut buffer = Vec::new();
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(Event::Init) => {
                buffer.clear();
                continue;
            }
            Ok(Event::InitApply(object)) => {
                buffer.extend(valid(&convert, &object));
                continue;
            }
            Ok(Event::InitDone) => {
                tracing::debug!(%kind, objects = buffer.len(), "initial list complete");
                SourceEvent::Relist(SourceId::KubeApi, kind, std::mem::take(&mut buffer))
            }
            Ok(Event::Apply(object)) => match valid(&convert, &object) {
                Some(resource) => SourceEvent::Apply(SourceId::KubeApi, resource),
                None => SourceEvent::Delete(
                    SourceId::KubeApi,
                    ResourceRef {
                        kind,
                        key: key_of(&object),
                    },
                ),
            },
            Ok(Event::Delete(object)) => SourceEvent::Delete(
                SourceId::KubeApi,
                ResourceRef {
                    kind,
                    key: key_of(&object),
                },
            ),
            Err(e) => {
                tracing::warn!(%kind, "watch error (the watcher retries with backoff): {e}");
                continue;
            }
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
}

fn valid<K>(
    convert: &impl Fn(&K) -> Result<Resource, InvalidObject>,
    object: &K,
) -> Option<Resource> {
    convert(object)
        .map_err(|e| tracing::warn!("skipping {e}"))
        .ok()
}
