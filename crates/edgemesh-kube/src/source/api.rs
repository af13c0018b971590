//! The Kubernetes API source: one kube-runtime watcher per kind.
//!
//! Watchers buffer the initial list and report it whole at `InitDone` (a relist replaces the
//! previous view atomically, so a reconnect never exposes half a list); afterwards each event is
//! forwarded as it comes.
//!
//! The agent degrades instead of stalling: EdgeMesh's own ClusterRole grants neither
//! EndpointSlices nor Nodes, and KubeEdge's metaServer answers API discovery with 500
//! "isn't supported". So EndpointSlices that are not served, not discoverable or refused fall
//! back to core Endpoints; refused Nodes or DestinationRules are done without; readiness never
//! waits for an optional kind ([`forward::Role`]). Each fallback is logged once.
//!
//! The gateway ([`Inputs::Gateway`]) also watches Istio Gateways and VirtualServices (optional
//! like DestinationRules) and Secrets (optional: EdgeMesh's gateway ClusterRole grants them, the
//! agent's does not, and the agent never asks for them).

pub mod access;
mod forward;
mod refusal;
mod retry;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_model::{Resource, ResourceKind, SourceId};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Client, Resource as KubeResource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::Inputs;
use crate::convert::{self, InvalidObject, object_key};
use crate::publisher::SourceEvent;
use forward::{Ended, Plan, Role, forward};
use refusal::{Grant, Refusal, classify, describe};

const ISTIO_GROUP: &str = "networking.istio.io";
const ISTIO_VERSIONS: [&str; 2] = ["v1beta1", "v1alpha3"];
/// Gateways and VirtualServices have the same fields in every version; v1 (Istio 1.22+) last so
/// that a server with all three is read as the DestinationRules are.
const ISTIO_INGRESS_VERSIONS: [&str; 3] = ["v1beta1", "v1alpha3", "v1"];
/// The version EdgeMesh's informer watches: used when API discovery cannot be asked.
const ISTIO_FALLBACK_VERSION: &str = "v1alpha3";
const SLICES_API: &str = "discovery.k8s.io/v1";
const DISCOVERY_RETRY: Duration = Duration::from_secs(2);
/// How often a role asks again whether an Istio CRD (DestinationRule, Gateway, ...) is served.
pub const CRD_RECHECK: Duration = Duration::from_secs(10);

const SERVICES: Grant = Grant::new("", "services");
const ENDPOINTS: Grant = Grant::new("", "endpoints");
const ENDPOINT_SLICES: Grant = Grant::new("discovery.k8s.io", "endpointslices");
const NODES: Grant = Grant::new("", "nodes");
const DESTINATION_RULES: Grant = Grant::new(ISTIO_GROUP, "destinationrules");
const GATEWAYS: Grant = Grant::new(ISTIO_GROUP, "gateways");
const VIRTUAL_SERVICES: Grant = Grant::new(ISTIO_GROUP, "virtualservices");
const SECRETS: Grant = Grant::new("", "secrets");
const PODS: Grant = Grant::new("", "pods");

type Events = mpsc::Sender<SourceEvent>;

/// Which endpoint API the source may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointsApi {
    /// EndpointSlices when served and allowed, else core Endpoints.
    #[default]
    Discover,
    /// Core Endpoints only: for KubeEdge's metaServer, which EdgeMesh reads core Endpoints
    /// from (and whose offline cache therefore holds them). From KubeEdge 1.23 on its API
    /// discovery passes through to the cloud and would offer EndpointSlices.
    CoreOnly,
}

/// Starts a watcher for every kind of `inputs`; returns when `events` is closed.
pub async fn run(client: Client, events: Events, endpoints: EndpointsApi, inputs: Inputs) {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch_services(client.clone(), events.clone()));
    tasks.spawn(watch_nodes(client.clone(), events.clone()));
    tasks.spawn(watch_endpoints(client.clone(), events.clone(), endpoints));
    tasks.spawn(watch_istio(client.clone(), events.clone(), RULES_KIND));
    if inputs.reads(ResourceKind::Gateway) {
        tasks.spawn(watch_istio(client.clone(), events.clone(), GATEWAYS_KIND));
    }
    if inputs.reads(ResourceKind::VirtualService) {
        tasks.spawn(watch_istio(client.clone(), events.clone(), ROUTES_KIND));
    }
    if inputs.reads(ResourceKind::Pod) {
        tasks.spawn(watch_pods(client.clone(), events.clone()));
    }
    if inputs.reads(ResourceKind::Secret) {
        tasks.spawn(watch_secrets(client, events));
    }
    while tasks.join_next().await.is_some() {}
}

async fn watch_services(client: Client, events: Events) {
    let plan = plan(ResourceKind::Service, Role::Required, SERVICES);
    watch(Api::<Service>::all(client), plan, events, |s| {
        convert::service(s).map(|s| Resource::Service(s.into()))
    })
    .await;
}

async fn watch_nodes(client: Client, events: Events) {
    let plan = plan(ResourceKind::Node, Role::Optional, NODES);
    let ended = watch(Api::<Node>::all(client), plan, events, |n| {
        convert::node(n).map(|s| Resource::Node(Arc::new(s)))
    })
    .await;
    if let Ended::Refused(refusal) = ended {
        tracing::warn!(
            reason = %refusal.message(),
            hint = %fix(NODES, &refusal),
            "Nodes cannot be listed; node addresses stay unknown, so the SOCKS5 proxy cannot resolve node names and the tunnel does not accept requests for this node's own addresses"
        );
    }
}

/// EndpointSlices when served and allowed, else core Endpoints (as EdgeMesh itself watches).
async fn watch_endpoints(client: Client, events: Events, endpoints: EndpointsApi) {
    let discovered = match endpoints {
        EndpointsApi::Discover => {
            retry_discovery(|| serves(&client, SLICES_API, "endpointslices"), &mut None).await
        }
        EndpointsApi::CoreOnly => Ok(false),
    };
    match discovered {
        Ok(true) => {
            let plan = Plan {
                replaces: Some(ResourceKind::Endpoints),
                ..plan(
                    ResourceKind::EndpointSlice,
                    Role::Replaceable,
                    ENDPOINT_SLICES,
                )
            };
            let slices = Api::<EndpointSlice>::all(client.clone());
            let ended = watch(slices, plan, events.clone(), |s| {
                convert::endpoint_slice(s).map(|s| Resource::EndpointSlice(Arc::new(s)))
            })
            .await;
            let Ended::Refused(refusal) = ended else {
                return;
            };
            tracing::warn!(
                reason = %refusal.message(),
                hint = %fix(ENDPOINT_SLICES, &refusal),
                "EndpointSlices cannot be listed; watching core Endpoints instead"
            );
        }
        Ok(false) if endpoints == EndpointsApi::CoreOnly => {
            tracing::info!("KubeEdge metaServer: watching core Endpoints, as EdgeMesh does")
        }
        Ok(false) => tracing::info!(
            api_version = %SLICES_API,
            "the API server does not serve EndpointSlices; watching core Endpoints"
        ),
        Err(refusal) => tracing::info!(
            api_version = %SLICES_API,
            reason = %refusal.message(),
            "the API server does not answer API discovery for EndpointSlices; watching core Endpoints"
        ),
    }
    not_served(&events, ResourceKind::EndpointSlice).await;
    let plan = plan(ResourceKind::Endpoints, Role::Required, ENDPOINTS);
    watch(Api::<Endpoints>::all(client), plan, events, |e| {
        convert::endpoints(e).map(|s| Resource::Endpoints(Arc::new(s)))
    })
    .await;
}

/// Pods, for their labels: the gateway sends a `destination.subset` only to the endpoints whose
/// pod carries the subset's labels. Optional: refused, every subset selects no endpoint.
async fn watch_pods(client: Client, events: Events) {
    let plan = plan(ResourceKind::Pod, Role::Optional, PODS);
    let ended = watch(Api::<Pod>::all(client), plan, events, |p| {
        convert::pod(p).map(|s| Resource::Pod(Arc::new(s)))
    })
    .await;
    if let Ended::Refused(refusal) = ended {
        tracing::warn!(
            reason = %refusal.message(),
            hint = %fix(PODS, &refusal),
            "Pods cannot be listed; routes to a DestinationRule subset find no endpoint"
        );
    }
}

/// Secrets holding TLS material, for the gateway's `credentialName`s; optional: refused, the
/// servers that name one cannot terminate TLS (the gateway reports each).
async fn watch_secrets(client: Client, events: Events) {
    let plan = plan(ResourceKind::Secret, Role::Optional, SECRETS);
    let stream = watcher::watcher(Api::<Secret>::all(client), watcher::Config::default());
    let convert =
        |s: &Secret| convert::tls_secret(s).map(|spec| spec.map(|s| Resource::Secret(Arc::new(s))));
    let ended = forward(stream, plan, events, convert, |s| {
        object_key(&s.metadata, true)
    })
    .await;
    if let Ended::Refused(refusal) = ended {
        tracing::warn!(
            reason = %refusal.message(),
            hint = %fix(SECRETS, &refusal),
            "Secrets cannot be listed; servers with a credentialName cannot terminate TLS"
        );
    }
}

/// An optional Istio kind: watched while its CRD is served, done without otherwise.
#[derive(Debug, Clone, Copy)]
struct IstioKind {
    kind: ResourceKind,
    plural: &'static str,
    grant: Grant,
    /// Asked for in API discovery, preferred first.
    versions: &'static [&'static str],
    /// What the role does without the kind, for the log.
    without: &'static str,
    convert: fn(&Value) -> Result<Resource, InvalidObject>,
}

const RULES_KIND: IstioKind = IstioKind {
    kind: ResourceKind::DestinationRule,
    plural: "destinationrules",
    grant: DESTINATION_RULES,
    versions: &ISTIO_VERSIONS,
    without: "every service uses round robin",
    convert: |v| convert::destination_rule(v).map(|s| Resource::DestinationRule(Arc::new(s))),
};

const GATEWAYS_KIND: IstioKind = IstioKind {
    kind: ResourceKind::Gateway,
    plural: "gateways",
    grant: GATEWAYS,
    versions: &ISTIO_INGRESS_VERSIONS,
    without: "the gateway opens no listeners",
    convert: |v| convert::gateway(v).map(|s| Resource::Gateway(Arc::new(s))),
};

const ROUTES_KIND: IstioKind = IstioKind {
    kind: ResourceKind::VirtualService,
    plural: "virtualservices",
    grant: VIRTUAL_SERVICES,
    versions: &ISTIO_INGRESS_VERSIONS,
    without: "the gateway routes no requests",
    convert: |v| convert::virtual_service(v).map(|v| Resource::VirtualService(Arc::new(v))),
};

/// An Istio kind, optional: without the CRD, or refused, the role does without it. Istio may be
/// installed (or removed) while the role runs, so discovery is asked again every
/// [`CRD_RECHECK`] while the kind is not watched, and after a watch ends in a refusal.
async fn watch_istio(client: Client, events: Events, istio: IstioKind) {
    let kind = istio.kind;
    let mut told = None;
    loop {
        let state = match istio_version(&client, &events, told.is_none(), istio).await {
            None => {
                not_served(&events, kind).await;
                IstioState::NotInstalled
            }
            Some(version) => {
                if told == Some(IstioState::NotInstalled) {
                    tracing::info!(
                        %kind,
                        api_version = %format_args!("{ISTIO_GROUP}/{version}"),
                        "Istio kind served now; watching it"
                    );
                }
                match watch_istio_of(&client, version, &events, istio).await {
                    Ended::Closed => return,
                    Ended::Refused(refusal) => IstioState::Refused(refusal),
                }
            }
        };
        if told.as_ref() != Some(&state) {
            state.log(istio);
            told = Some(state);
        }
        tokio::time::sleep(CRD_RECHECK).await;
    }
}

/// Why an Istio kind is not watched right now (logged when it changes).
#[derive(Debug, PartialEq, Eq)]
enum IstioState {
    NotInstalled,
    Refused(Refusal),
}

impl IstioState {
    fn log(&self, istio: IstioKind) {
        let IstioKind { kind, without, .. } = istio;
        match self {
            IstioState::NotInstalled => tracing::info!(
                %kind,
                effect = %without,
                recheck = ?CRD_RECHECK,
                "Istio CRD not installed; checking again"
            ),
            IstioState::Refused(refusal @ Refusal::Forbidden(_)) => tracing::warn!(
                %kind,
                reason = %refusal.message(),
                effect = %without,
                hint = %fix(istio.grant, refusal),
                "Istio kind cannot be listed"
            ),
            IstioState::Refused(refusal) => tracing::info!(
                %kind,
                reason = %refusal.message(),
                effect = %without,
                recheck = ?CRD_RECHECK,
                "Istio kind not served; checking again"
            ),
        }
    }
}

/// Watches the kind at `version` until the watch is refused or the publisher is gone.
async fn watch_istio_of(
    client: &Client,
    version: &str,
    events: &Events,
    istio: IstioKind,
) -> Ended {
    let gvk = GroupVersionKind::gvk(ISTIO_GROUP, version, istio.kind.as_str());
    let resource = ApiResource::from_gvk_with_plural(&gvk, istio.plural);
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    let stream = watcher::watcher(api, watcher::Config::default());
    let convert = |o: &DynamicObject| {
        let value = serde_json::to_value(o).unwrap_or_default();
        (istio.convert)(&value).map(Some)
    };
    let plan = plan(istio.kind, Role::Optional, istio.grant);
    forward(stream, plan, events.clone(), convert, |o| {
        object_key(&o.metadata, true)
    })
    .await
}

/// The served version of the kind; when discovery itself is refused (the metaServer), the
/// version EdgeMesh watches. While discovery fails, readiness does not wait for the kind.
/// `first`: the first look, which logs a refused discovery (the later ones every
/// [`CRD_RECHECK`] would repeat it).
async fn istio_version(
    client: &Client,
    events: &Events,
    first: bool,
    istio: IstioKind,
) -> Option<&'static str> {
    let kind = istio.kind;
    let mut release = Some((events, kind));
    for version in istio.versions {
        let api_version = format!("{ISTIO_GROUP}/{version}");
        let answer =
            retry_discovery(|| serves(client, &api_version, istio.plural), &mut release).await;
        match answer {
            Ok(true) => return Some(version),
            Ok(false) => {}
            Err(refusal) => {
                if first {
                    tracing::info!(
                        %kind,
                        %api_version,
                        reason = %refusal.message(),
                        fallback = %format_args!("{ISTIO_GROUP}/{ISTIO_FALLBACK_VERSION}"),
                        "API discovery refused; watching the fallback version directly"
                    );
                }
                return Some(ISTIO_FALLBACK_VERSION);
            }
        }
    }
    None
}

/// Whether `api_version` serves `plural` (404: not served); `Err(Refusal)` when discovery itself
/// is refused (403, the metaServer's 500); the outer `Err` for errors worth retrying.
async fn serves(
    client: &Client,
    api_version: &str,
    plural: &str,
) -> Result<Result<bool, Refusal>, kube::Error> {
    match client.list_api_group_resources(api_version).await {
        Ok(list) => Ok(Ok(list.resources.iter().any(|r| r.name == plural))),
        Err(e) => match classify(&e) {
            Some(Refusal::Unsupported(_)) if is_not_found(&e) => Ok(Ok(false)),
            Some(refusal) => Ok(Err(refusal)),
            None => Err(e),
        },
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Discovery must get an answer before a watcher starts: retry (logging) until the server
/// answers. With `release`, the first failure tells readiness not to wait for that kind.
async fn retry_discovery<F, Fut, T>(mut ask: F, release: &mut Option<(&Events, ResourceKind)>) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    loop {
        match ask().await {
            Ok(answer) => return answer,
            Err(e) => {
                tracing::warn!(
                    error = %describe(&e),
                    retry_in = ?DISCOVERY_RETRY,
                    "API discovery failed; retrying"
                );
                if let Some((events, kind)) = release.take() {
                    tracing::warn!(
                        %kind,
                        "readiness does not wait for the kind while API discovery fails (still trying)"
                    );
                    not_served(events, kind).await;
                }
                tokio::time::sleep(DISCOVERY_RETRY).await;
            }
        }
    }
}

/// What to do about a refusal: a 403 names the grant; a 404 or 500 says the server lacks it.
fn fix(grant: Grant, refusal: &Refusal) -> String {
    match refusal {
        Refusal::Forbidden(_) => format!("To enable them, {}", grant.hint(refusal)),
        Refusal::Unsupported(_) => format!("The API server does not serve {grant}."),
    }
}

fn plan(kind: ResourceKind, role: Role, grant: Grant) -> Plan {
    Plan {
        kind,
        role,
        grant,
        replaces: None,
    }
}

async fn not_served(events: &Events, kind: ResourceKind) {
    let _ = events
        .send(SourceEvent::NotServed(SourceId::KubeApi, kind))
        .await;
}

async fn watch<K, F>(api: Api<K>, plan: Plan, events: Events, convert: F) -> Ended
where
    K: KubeResource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Fn(&K) -> Result<Resource, InvalidObject>,
{
    let namespaced = plan.kind != ResourceKind::Node;
    let stream = watcher::watcher(api, watcher::Config::default());
    let convert = move |o: &K| convert(o).map(Some);
    forward(stream, plan, events, convert, |o: &K| {
        object_key(o.meta(), namespaced)
    })
    .await
}
