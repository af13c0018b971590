//! Validated specs: what a source says about one Kubernetes object, already checked.
//!
//! Sources turn API objects into these types through `TryFrom` conversions that reject bad input
//! with a reason; everything downstream can rely on the invariants stated here.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::intern::{NAMESPACES, NODE_NAMES, PORT_NAMES};
use crate::{Cidr, ThinStr};

/// Label that takes a Service out of (or, in `FilterIfLabelDoesNotExists` mode, into) edgemesh.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.edgemesh.kubeedge.io/service-proxy-name";

/// `namespace/name` of a namespaced object (namespace is empty for cluster-scoped ones).
///
/// The strings are shared: a key is cloned into the catalog's index, the spec, the Snapshot's
/// index and its Service, and a clone costs a reference count, not two allocations. Namespaces
/// are few and repeat across every object, so they are interned as well, behind a one-word
/// pointer (a key repeats several times per service: 8 bytes each at 100,000 services).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    #[serde(deserialize_with = "interned_namespace")]
    pub namespace: ThinStr,
    pub name: Arc<str>,
}

impl ObjectKey {
    pub fn new(namespace: impl AsRef<str>, name: impl Into<Arc<str>>) -> Self {
        Self {
            namespace: NAMESPACES.get(namespace.as_ref()),
            name: name.into(),
        }
    }

    /// Key of a cluster-scoped object such as a Node.
    pub fn cluster(name: impl Into<Arc<str>>) -> Self {
        Self::new("", name)
    }
}

fn interned_namespace<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ThinStr, D::Error> {
    let namespace = String::deserialize(d)?;
    Ok(NAMESPACES.get(&namespace))
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Transport protocol of a service port, spelled as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a protocol name Kubernetes does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol '{0}' (expected TCP, UDP or SCTP)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
            other => Err(UnknownProtocol(other.to_string())),
        }
    }
}

/// Which services the agent proxies, relative to [`SERVICE_PROXY_NAME_LABEL`]
/// (EdgeMesh's `modules.edgeProxy.serviceFilterMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceFilterMode {
    /// Proxy every service except those carrying the label (EdgeMesh's default).
    #[default]
    FilterIfLabelExists,
    /// Proxy only the services carrying the label.
    FilterIfLabelDoesNotExists,
}

impl ServiceFilterMode {
    pub const ALLOWED: &'static str = "FilterIfLabelExists or FilterIfLabelDoesNotExists";

    /// Whether a service with (or without) the label is proxied in this mode.
    pub fn proxies(self, has_label: bool) -> bool {
        match self {
            ServiceFilterMode::FilterIfLabelExists => !has_label,
            ServiceFilterMode::FilterIfLabelDoesNotExists => has_label,
        }
    }
}

/// How a Service is addressed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum ServiceKind {
    /// A virtual IP per IP family; empty only for a manifest that has not been assigned one.
    ClusterIp { cluster_ips: Vec<IpAddr> },
    /// A ClusterIP service that is also reachable from outside the cluster: node ports
    /// (`type: NodePort` or `LoadBalancer`), `spec.externalIPs` and/or load-balancer ingress IPs. A variant of its own
    /// rather than fields on every service, so that code which builds plain ClusterIP specs is
    /// unaffected; [`ServiceKind::cluster_ips`] reads the ClusterIPs of both. Boxed: few
    /// services are exposed, and inline it would make every service's kind 48 bytes larger, in
    /// the catalog and in the Snapshot alike.
    Exposed {
        cluster_ips: Vec<IpAddr>,
        exposure: Box<Exposure>,
    },
    /// `clusterIP: None`: DNS answers with the endpoints themselves.
    Headless,
    /// `type: ExternalName`: DNS answers with a CNAME.
    ExternalName { external_name: String },
}

impl ServiceKind {
    /// The ClusterIPs (empty for headless and ExternalName services).
    pub fn cluster_ips(&self) -> &[IpAddr] {
        match self {
            ServiceKind::ClusterIp { cluster_ips } | ServiceKind::Exposed { cluster_ips, .. } => {
                cluster_ips
            }
            ServiceKind::Headless | ServiceKind::ExternalName { .. } => &[],
        }
    }

    /// How the service is reached from outside the cluster, if it is.
    pub fn exposure(&self) -> Option<&Exposure> {
        match self {
            ServiceKind::Exposed { exposure, .. } => Some(exposure),
            _ => None,
        }
    }
}

/// `spec.externalTrafficPolicy`: which endpoints serve traffic that arrives by a node port or
/// an external IP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum ExternalTrafficPolicy {
    /// Every ready endpoint (Kubernetes' default).
    #[default]
    Cluster,
    /// Only the endpoints on the node the traffic arrived at; none there: refused.
    Local,
}

/// The node port of one service port (`spec.ports[].nodePort`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePortSpec {
    pub protocol: Protocol,
    /// The service port it belongs to.
    pub port: u16,
    pub node_port: u16,
}

/// How a service is reached from outside the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    /// `spec.ports[].nodePort`: every local address of the node (but loopback) at this port.
    pub node_ports: Vec<NodePortSpec>,
    /// `spec.externalIPs` and `status.loadBalancer.ingress[].ip` (but `ipMode: Proxy`): extra
    /// addresses at the service's ports.
    pub external_ips: Vec<IpAddr>,
    pub external_traffic_policy: ExternalTrafficPolicy,
}

impl Exposure {
    pub fn is_empty(&self) -> bool {
        self.node_ports.is_empty() && self.external_ips.is_empty()
    }
}

/// `targetPort` of a service port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// One entry of `spec.ports` (port is non-zero; name unique within the service).
///
/// The name and application protocol are shared strings (see [`port_name`]): a few repeat in
/// every service, and the Snapshot's [`ServicePort`](crate::ServicePort) shares them too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortSpec {
    pub name: ThinStr,
    pub protocol: Protocol,
    pub port: u16,
    pub target_port: TargetPort,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<ThinStr>,
}

/// `sessionAffinity: ClientIP` with its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIpAffinity {
    #[serde(with = "secs")]
    pub timeout: Duration,
}

impl ClientIpAffinity {
    /// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10_800);
}

/// A validated Service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    pub key: ObjectKey,
    pub kind: ServiceKind,
    pub ports: Vec<ServicePortSpec>,
    /// The service carries [`SERVICE_PROXY_NAME_LABEL`] (any value).
    pub has_proxy_name_label: bool,
    pub session_affinity: Option<ClientIpAffinity>,
}

/// One port of an endpoint set (EndpointSlice `ports[]` or Endpoints `subsets[].ports[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointPortSpec {
    /// Shared, as a service port's name (see [`port_name`]).
    pub name: ThinStr,
    pub protocol: Protocol,
    pub port: u16,
}

/// One address of an endpoint set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    pub ip: IpAddr,
    pub ready: bool,
    /// Shared with every endpoint on the same node (see [`node_name`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<ThinStr>,
    /// Shared with the Snapshot's [`Endpoint`](crate::Endpoint): a clone is a reference count,
    /// and the field is one word (most endpoints have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<ThinStr>,
}

/// The shared copy of a node name, as an endpoint holds it.
pub fn node_name(name: &str) -> ThinStr {
    NODE_NAMES.get(name)
}

/// The shared copy of a port name or application protocol, as a port holds it.
pub fn port_name(name: &str) -> ThinStr {
    PORT_NAMES.get(name)
}

/// Addresses sharing one port list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointSubset {
    pub ports: Vec<EndpointPortSpec>,
    pub endpoints: Vec<EndpointSpec>,
}

/// The endpoints one object (an EndpointSlice or a core Endpoints) contributes to a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointSetSpec {
    /// The object's own key (an EndpointSlice is named differently from its service).
    pub key: ObjectKey,
    /// The service these endpoints belong to.
    pub service: ObjectKey,
    pub subsets: Vec<EndpointSubset>,
}

/// Which request property feeds the consistent hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HashKey {
    SourceIp,
    HttpHeader(String),
}

/// Load-balancing policy of a service (from an Istio DestinationRule named like it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    Random,
    ConsistentHash(HashKey),
}

/// A validated DestinationRule: its key names the service it applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DestinationRuleSpec {
    pub key: ObjectKey,
    pub policy: LbPolicy,
    /// `spec.host` as written (empty when absent); the gateway resolves subsets through it.
    pub host: String,
    pub subsets: Vec<SubsetSpec>,
}

/// One `spec.subsets[]` entry of a DestinationRule: the endpoints whose pod carries `labels`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubsetSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// What the gateway needs of a Pod: its address and labels, to select DestinationRule subsets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodSpec {
    pub key: ObjectKey,
    /// `status.podIP` (`None` until scheduled and started).
    pub ip: Option<IpAddr>,
    pub labels: BTreeMap<String, String>,
}

/// One address of a Node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, ...
    pub kind: String,
    pub ip: IpAddr,
}

/// A validated Node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeSpec {
    pub name: String,
    pub addresses: Vec<NodeAddress>,
    /// `spec.podCIDRs` (or `spec.podCIDR`): the pod addresses this node hands out.
    pub pod_cidrs: Vec<Cidr>,
}

mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_modes_match_edgemesh() {
        use ServiceFilterMode::*;
        assert!(FilterIfLabelExists.proxies(false));
        assert!(!FilterIfLabelExists.proxies(true));
        assert!(FilterIfLabelDoesNotExists.proxies(true));
        assert!(!FilterIfLabelDoesNotExists.proxies(false));
    }

    #[test]
    fn protocol_round_trips_kubernetes_spelling() {
        for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            assert_eq!(p.as_str().parse::<Protocol>(), Ok(p));
        }
        assert!("tcp".parse::<Protocol>().is_err());
    }

    #[test]
    fn object_key_displays_like_kubectl() {
        assert_eq!(ObjectKey::new("ns", "a").to_string(), "ns/a");
        assert_eq!(ObjectKey::cluster("node1").to_string(), "node1");
    }
}
