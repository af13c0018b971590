//! The immutable, versioned view of the mesh that the data path reads.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState as FastHash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::ThinStr;
use crate::ingress::Ingress;
use crate::spec::{
    ClientIpAffinity, ExternalTrafficPolicy, LbPolicy, NodeSpec, ObjectKey, Protocol,
    ServiceFilterMode, ServiceKind, ServiceSpec,
};

mod build;

/// What a client dials: a ClusterIP, a port and a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Frontend {
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl Frontend {
    /// The frontend of a node port. The unspecified address of the family stands for "any local
    /// address of this node": the kernel rule matches the local addresses, and the proxy maps a
    /// connection to `nodeIP:nodePort` back here with [`Snapshot::resolve`].
    pub fn node_port(family_of: IpAddr, node_port: u16, protocol: Protocol) -> Self {
        let ip = match family_of {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Self {
            ip,
            port: node_port,
            protocol,
        }
    }

    /// Whether this is a node port (see [`Frontend::node_port`]).
    pub fn is_node_port(&self) -> bool {
        self.ip.is_unspecified()
    }
}

/// One ready backend of a service port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    pub addr: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<ThinStr>,
}

impl Backend {
    /// Whether this node reaches the backend without the tunnel: it runs on `node`, or carries
    /// no node name (manifests of an offline site). The tunnel's dialer and the kernel fast path
    /// decide with this one rule.
    pub fn is_local_to(&self, node: &str) -> bool {
        self.node_name.as_deref().is_none_or(|n| n == node)
    }
}

/// One ready endpoint address of a service, as DNS needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<ThinStr>,
    /// The catalog's copy (see [`EndpointSpec::hostname`](crate::EndpointSpec::hostname)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<ThinStr>,
}

/// A service port with its resolved backends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// The spec's shared string (see [`port_name`](crate::port_name)).
    pub name: ThinStr,
    pub protocol: Protocol,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<ThinStr>,
    pub backends: Arc<[Backend]>,
}

/// Why a service gets no proxy rule (it is still served by DNS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    Headless,
    ExternalName,
    /// Excluded by `serviceFilterMode` and the service-proxy-name label.
    FilteredByLabel,
    /// A manifest without `clusterIP`: nothing to intercept.
    NoClusterIp,
}

/// Whether the agent intercepts a service's ClusterIP traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProxyDecision {
    Proxied,
    Skipped(SkipReason),
}

/// A service as the data path sees it.
///
/// Its key, kind and session affinity are those of the catalog's [`ServiceSpec`], shared rather
/// than copied: at 100,000 services the copies were ~90 bytes and an allocation per service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// The Service object as the catalog holds it (`spec.ports` are the ports as declared;
    /// [`Service::ports`] are the same ports with their backends).
    pub spec: Arc<ServiceSpec>,
    pub proxy: ProxyDecision,
    pub lb_policy: LbPolicy,
    pub ports: Vec<ServicePort>,
    /// Ready endpoint addresses, unique by IP.
    pub endpoints: Vec<Endpoint>,
}

impl Service {
    /// `namespace/name` of the Service.
    pub fn key(&self) -> &ObjectKey {
        &self.spec.key
    }

    /// How the Service is addressed.
    pub fn kind(&self) -> &ServiceKind {
        &self.spec.kind
    }

    /// `sessionAffinity: ClientIP`, if set.
    pub fn session_affinity(&self) -> Option<ClientIpAffinity> {
        self.spec.session_affinity
    }

    pub fn is_proxied(&self) -> bool {
        self.proxy == ProxyDecision::Proxied
    }

    /// The ClusterIPs (empty for headless and ExternalName services).
    pub fn cluster_ips(&self) -> &[IpAddr] {
        self.kind().cluster_ips()
    }

    /// The frontends this service claims when proxied, with the index of their port: each
    /// ClusterIP and external IP at each port, and each node port once per IP family of the
    /// ClusterIPs (a frontend two services claim routes to one of them only).
    pub fn frontends(&self) -> Vec<(Frontend, usize)> {
        let exposure = self.kind().exposure();
        let external_ips = exposure.map_or(&[][..], |e| &e.external_ips[..]);
        let mut out = Vec::new();
        for ip in self.cluster_ips().iter().chain(external_ips) {
            for (index, port) in self.ports.iter().enumerate() {
                let frontend = Frontend {
                    ip: *ip,
                    port: port.port,
                    protocol: port.protocol,
                };
                out.push((frontend, index));
            }
        }
        let node_ports = exposure.map_or(&[][..], |e| &e.node_ports[..]);
        let mut families: Vec<IpAddr> = self.cluster_ips().to_vec();
        families.dedup_by_key(|ip| ip.is_ipv4());
        for node_port in node_ports {
            let index = self
                .ports
                .iter()
                .position(|p| p.protocol == node_port.protocol && p.port == node_port.port);
            let Some(index) = index else { continue };
            for family in &families {
                let frontend =
                    Frontend::node_port(*family, node_port.node_port, node_port.protocol);
                out.push((frontend, index));
            }
        }
        out
    }

    /// Whether a connection that reached this service at `frontend` may only use endpoints of
    /// this node: `externalTrafficPolicy: Local` for traffic by a node port or an external IP
    /// (ClusterIP traffic always uses every endpoint, as in kube-proxy).
    pub fn local_endpoints_only(&self, frontend: &Frontend) -> bool {
        self.kind().exposure().is_some_and(|e| {
            e.external_traffic_policy == ExternalTrafficPolicy::Local
                && (frontend.is_node_port() || e.external_ips.contains(&frontend.ip))
        })
    }
}

/// The fields of the former derived form, in its order: `key`, the kind's fields, `proxy`,
/// `lbPolicy`, `sessionAffinity` (when set), `ports`, `endpoints`.
impl Serialize for Service {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct View<'a> {
            key: &'a ObjectKey,
            #[serde(flatten)]
            kind: &'a ServiceKind,
            proxy: ProxyDecision,
            lb_policy: &'a LbPolicy,
            #[serde(skip_serializing_if = "Option::is_none")]
            session_affinity: Option<ClientIpAffinity>,
            ports: &'a [ServicePort],
            endpoints: &'a [Endpoint],
        }
        View {
            key: self.key(),
            kind: self.kind(),
            proxy: self.proxy,
            lb_policy: &self.lb_policy,
            session_affinity: self.session_affinity(),
            ports: &self.ports,
            endpoints: &self.endpoints,
        }
        .serialize(serializer)
    }
}

/// Inputs of a rebuild that do not come from the sources.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildOptions {
    pub filter_mode: ServiceFilterMode,
    pub version: u64,
    /// The edge hub: when set, every TCP port of the `default/kubernetes` Service has this one
    /// backend instead of the apiserver's endpoints, so unmodified pods that use
    /// `KUBERNETES_SERVICE_HOST` reach the apiserver through the hub (and its offline cache).
    pub apiserver_via: Option<SocketAddr>,
}

/// What a rebuild noticed that an operator should know (each message names the object).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildReport {
    pub warnings: Vec<String>,
}

/// An immutable, versioned view of every service, its backends and policy.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    pub nodes: BTreeMap<String, NodeSpec>,
    /// Gateways, VirtualServices and TLS Secrets (the gateway's inputs).
    pub ingress: Arc<Ingress>,
    /// Looked up once per connection: a fast non-cryptographic hash (keys are not attacker-chosen
    /// beyond what the API server already accepted).
    frontends: HashMap<Frontend, (Arc<Service>, usize), FastHash>,
    /// Set when this Snapshot was built from the previous one by rebuilding only some services:
    /// consumers that hold the previous one may update for these services alone.
    pub changes: Option<Arc<SnapshotChanges>>,
    /// Two services claimed one frontend: a change may hand it to the other, which only a full
    /// build decides.
    contested: bool,
}

/// The services a Snapshot rebuilt (added, changed or removed) over the one of version `since`;
/// every other service is the same `Arc` as in that Snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotChanges {
    pub since: u64,
    pub services: Vec<ObjectKey>,
}

impl Snapshot {
    /// The empty snapshot the agent starts from (version 0).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The proxied service port a client reaches at `frontend`, if any.
    pub fn route(&self, frontend: &Frontend) -> Option<(&Arc<Service>, &ServicePort)> {
        let (service, index) = self.frontends.get(frontend)?;
        Some((service, service.ports.get(*index)?))
    }

    /// The frontend serving a connection whose original destination is `dst`: `dst` itself when
    /// it is a ClusterIP or external IP frontend, else the node port at `dst`'s port. The kernel
    /// hands the proxy only intercepted frontends and local addresses at a node port, so a
    /// destination that is no frontend of its own is a node port (ClusterIPs and external IPs
    /// win over node ports, as in kube-proxy, whose node-port rules come last).
    pub fn resolve(&self, dst: &Frontend) -> Option<Frontend> {
        if self.frontends.contains_key(dst) {
            return Some(*dst);
        }
        let node_port = Frontend::node_port(dst.ip, dst.port, dst.protocol);
        self.frontends.contains_key(&node_port).then_some(node_port)
    }

    pub fn service(&self, key: &ObjectKey) -> Option<&Arc<Service>> {
        self.services.get(key)
    }

    /// Every intercepted frontend, in a stable order (for rule generation).
    pub fn proxied_frontends(&self) -> impl Iterator<Item = (Frontend, &ServicePort)> {
        let mut all: Vec<_> = self
            .frontends
            .iter()
            .map(|(f, (s, i))| (*f, &s.ports[*i]))
            .collect();
        all.sort_by_key(|(f, _)| *f);
        all.into_iter()
    }

    /// Number of intercepted frontends.
    pub fn frontend_count(&self) -> usize {
        self.frontends.len()
    }
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Services<'a>(&'a BTreeMap<ObjectKey, Arc<Service>>);
        impl Serialize for Services<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (key, service) in self.0 {
                    map.serialize_entry(&key.to_string(), service.as_ref())?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("version", &self.version)?;
        map.serialize_entry("services", &Services(&self.services))?;
        map.serialize_entry("nodes", &self.nodes)?;
        map.end()
    }
}

/// Lock-free publication of the current [`Snapshot`]: the control plane stores, the data path
/// loads without ever waiting on it.
#[derive(Debug)]
pub struct SnapshotCell(ArcSwap<Snapshot>);

impl SnapshotCell {
    pub fn new(initial: Snapshot) -> Self {
        Self(ArcSwap::from_pointee(initial))
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    pub fn store(&self, snapshot: Arc<Snapshot>) {
        self.0.store(snapshot);
    }
}

impl Default for SnapshotCell {
    fn default() -> Self {
        Self::new(Snapshot::empty())
    }
}
