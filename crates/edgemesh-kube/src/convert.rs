//! Kubernetes objects → validated model specs.
//!
//! Every conversion either yields a spec whose invariants the rest of the agent relies on, or an
//! [`InvalidObject`] naming the object and what is wrong with it; the caller logs and skips it.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use edgemesh_model::{
    ClientIpAffinity, DestinationRuleSpec, EndpointPortSpec, EndpointSetSpec, EndpointSpec,
    EndpointSubset, Exposure, ExternalTrafficPolicy, HashKey, LbPolicy, NodeAddress, NodePortSpec,
    NodeSpec, ObjectKey, PodSpec, Protocol, ResourceKind, SERVICE_PROXY_NAME_LABEL, ServiceKind,
    ServicePortSpec, ServiceSpec, SubsetSpec, TargetPort, ThinStr,
};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// An object that cannot be used, with the reason. Displays as `Service ns/name: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {key}: {reason}")]
pub struct InvalidObject {
    pub kind: ResourceKind,
    pub key: ObjectKey,
    pub reason: String,
}

type Result<T> = std::result::Result<T, InvalidObject>;

/// Label EndpointSlices carry to name their service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The object's key; manifests may omit the namespace, which then means `default`.
pub fn object_key(meta: &ObjectMeta, namespaced: bool) -> ObjectKey {
    let name = meta.name.clone().unwrap_or_default();
    if !namespaced {
        return ObjectKey::cluster(name);
    }
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    ObjectKey::new(namespace, name)
}

fn invalid(kind: ResourceKind, key: &ObjectKey, reason: impl Into<String>) -> InvalidObject {
    InvalidObject {
        kind,
        key: key.clone(),
        reason: reason.into(),
    }
}

fn require_name(kind: ResourceKind, key: &ObjectKey) -> Result<()> {
    if key.name.is_empty() {
        return Err(invalid(kind, key, "metadata.name is missing"));
    }
    Ok(())
}

fn port_number(value: i32, what: &str) -> std::result::Result<u16, String> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{what} {value} is out of range 1-65535"))
}

fn protocol(value: Option<&String>) -> std::result::Result<Protocol, String> {
    value.map_or(Ok(Protocol::Tcp), |p| p.parse().map_err(|e| format!("{e}")))
}

/// Converts a Service.
pub fn service(svc: &Service) -> Result<ServiceSpec> {
    let kind = ResourceKind::Service;
    let key = object_key(&svc.metadata, true);
    require_name(kind, &key)?;
    let spec = svc
        .spec
        .as_ref()
        .ok_or_else(|| invalid(kind, &key, "spec is missing"))?;
    let service_kind = service_kind(spec).map_err(|r| invalid(kind, &key, r))?;
    let ports = service_ports(spec.ports.as_deref().unwrap_or_default())
        .map_err(|r| invalid(kind, &key, r))?;
    if ports.is_empty() && matches!(service_kind, ServiceKind::ClusterIp { .. }) {
        return Err(invalid(kind, &key, "spec.ports is empty"));
    }
    let has_proxy_name_label = svc
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL));
    let service_kind = with_exposure(service_kind, svc).map_err(|r| invalid(kind, &key, r))?;
    Ok(ServiceSpec {
        key,
        kind: service_kind,
        ports,
        has_proxy_name_label,
        session_affinity: session_affinity(spec),
    })
}

fn service_kind(
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
) -> std::result::Result<ServiceKind, String> {
    if spec.type_.as_deref() == Some("ExternalName") {
        let external_name = spec.external_name.clone().unwrap_or_default();
        if external_name.is_empty() {
            return Err("type ExternalName without spec.externalName".into());
        }
        return Ok(ServiceKind::ExternalName { external_name });
    }
    let ips: Vec<&String> = match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.iter().collect(),
        (_, Some(ip)) if !ip.is_empty() => vec![ip],
        _ => vec![],
    };
    if ips.first().is_some_and(|ip| ip.as_str() == "None") {
        return Ok(ServiceKind::Headless);
    }
    let cluster_ips = ips
        .into_iter()
        .map(|ip| {
            ip.parse::<IpAddr>()
                .map_err(|_| format!("spec.clusterIP '{ip}' is not an IP address"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(ServiceKind::ClusterIp { cluster_ips })
}

/// A ClusterIP service with node ports or external IPs becomes [`ServiceKind::Exposed`].
fn with_exposure(kind: ServiceKind, svc: &Service) -> std::result::Result<ServiceKind, String> {
    let ServiceKind::ClusterIp { cluster_ips } = kind else {
        return Ok(kind);
    };
    let Some(spec) = svc.spec.as_ref() else {
        return Ok(ServiceKind::ClusterIp { cluster_ips });
    };
    let mut external = external_ips(spec.external_ips.as_deref().unwrap_or_default())?;
    for ip in load_balancer_ips(svc)? {
        if !external.contains(&ip) {
            external.push(ip);
        }
    }
    let exposure = Exposure {
        node_ports: node_ports(spec.ports.as_deref().unwrap_or_default())?,
        external_ips: external,
        external_traffic_policy: external_traffic_policy(spec)?,
    };
    if exposure.is_empty() {
        return Ok(ServiceKind::ClusterIp { cluster_ips });
    }
    Ok(ServiceKind::Exposed {
        cluster_ips,
        exposure: Box::new(exposure),
    })
}

/// `spec.ports[].nodePort` where set and non-zero (a LoadBalancer with
/// `allocateLoadBalancerNodePorts: false` has none).
fn node_ports(ports: &[ServicePort]) -> std::result::Result<Vec<NodePortSpec>, String> {
    let mut out = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let Some(node_port) = p.node_port.filter(|n| *n != 0) else {
            continue;
        };
        out.push(NodePortSpec {
            protocol: protocol(p.protocol.as_ref()).map_err(|e| format!("spec.ports[{i}]: {e}"))?,
            port: port_number(p.port, &format!("spec.ports[{i}].port"))?,
            node_port: port_number(node_port, &format!("spec.ports[{i}].nodePort"))?,
        });
    }
    Ok(out)
}

fn external_ips(ips: &[String]) -> std::result::Result<Vec<IpAddr>, String> {
    ips.iter()
        .map(|ip| {
            ip.parse::<IpAddr>()
                .map_err(|_| format!("spec.externalIPs '{ip}' is not an IP address"))
        })
        .collect()
}

/// `status.loadBalancer.ingress[].ip`, served like external IPs (as EdgeMesh's userspace proxier
/// and kube-proxy do), except those with `ipMode: Proxy`: that load balancer proxies itself and
/// the node must not short-circuit it (kube-proxy skips them too).
fn load_balancer_ips(svc: &Service) -> std::result::Result<Vec<IpAddr>, String> {
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    let mut ips = Vec::new();
    for (i, entry) in ingress.iter().enumerate() {
        let Some(ip) = entry.ip.as_deref().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        if entry.ip_mode.as_deref() == Some("Proxy") {
            continue;
        }
        ips.push(ip.parse::<IpAddr>().map_err(|_| {
            format!("status.loadBalancer.ingress[{i}].ip '{ip}' is not an IP address")
        })?);
    }
    Ok(ips)
}

fn external_traffic_policy(
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
) -> std::result::Result<ExternalTrafficPolicy, String> {
    match spec.external_traffic_policy.as_deref() {
        None | Some("") | Some("Cluster") => Ok(ExternalTrafficPolicy::Cluster),
        Some("Local") => Ok(ExternalTrafficPolicy::Local),
        Some(other) => Err(format!(
            "spec.externalTrafficPolicy '{other}' is not Cluster or Local"
        )),
    }
}

fn service_ports(ports: &[ServicePort]) -> std::result::Result<Vec<ServicePortSpec>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ports.len());
    for (i, p) in ports.iter().enumerate() {
        let port = port_number(p.port, &format!("spec.ports[{i}].port"))?;
        let protocol =
            protocol(p.protocol.as_ref()).map_err(|e| format!("spec.ports[{i}]: {e}"))?;
        if !seen.insert((port, protocol)) {
            return Err(format!(
                "spec.ports[{i}]: port {port}/{protocol} is listed twice"
            ));
        }
        let target_port = match &p.target_port {
            None => TargetPort::Number(port),
            Some(IntOrString::Int(n)) => {
                TargetPort::Number(port_number(*n, &format!("spec.ports[{i}].targetPort"))?)
            }
            Some(IntOrString::String(name)) => TargetPort::Name(name.clone()),
        };
        out.push(ServicePortSpec {
            name: edgemesh_model::port_name(p.name.as_deref().unwrap_or_default()),
            protocol,
            port,
            target_port,
            app_protocol: p.app_protocol.as_deref().map(edgemesh_model::port_name),
        });
    }
    Ok(out)
}

fn session_affinity(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Option<ClientIpAffinity> {
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let seconds = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0);
    let timeout = seconds.map_or(ClientIpAffinity::DEFAULT_TIMEOUT, Duration::from_secs);
    Some(ClientIpAffinity { timeout })
}

/// Converts an EndpointSlice (discovery.k8s.io/v1).
pub fn endpoint_slice(slice: &EndpointSlice) -> Result<EndpointSetSpec> {
    let kind = ResourceKind::EndpointSlice;
    let key = object_key(&slice.metadata, true);
    require_name(kind, &key)?;
    let service_name = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .ok_or_else(|| invalid(kind, &key, format!("label {SERVICE_NAME_LABEL} is missing")))?;
    let mut ports = Vec::new();
    for (i, p) in slice.ports.iter().flatten().enumerate() {
        let Some(number) = p.port else { continue };
        let port =
            port_number(number, &format!("ports[{i}].port")).map_err(|r| invalid(kind, &key, r))?;
        let protocol = protocol(p.protocol.as_ref()).map_err(|r| invalid(kind, &key, r))?;
        ports.push(EndpointPortSpec {
            name: edgemesh_model::port_name(p.name.as_deref().unwrap_or_default()),
            protocol,
            port,
        });
    }
    let mut endpoints = Vec::new();
    for ep in slice.endpoints.iter().flatten() {
        // Kubernetes: a nil `ready` condition means ready.
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        for address in &ep.addresses {
            let ip = endpoint_ip(address).map_err(|reason| invalid(kind, &key, reason))?;
            endpoints.push(EndpointSpec {
                ip,
                ready,
                node_name: ep.node_name.as_deref().map(edgemesh_model::node_name),
                hostname: ep.hostname.as_deref().map(ThinStr::from),
            });
        }
    }
    let service = ObjectKey::new(key.namespace.clone(), service_name.clone());
    // The catalog keeps every slice for the agent's lifetime: growth slack (a Vec of 3 pushed
    // endpoints has room for 4) was ~2 MiB at 10,000 Services (massif).
    ports.shrink_to_fit();
    endpoints.shrink_to_fit();
    Ok(EndpointSetSpec {
        key,
        service,
        subsets: vec![EndpointSubset { ports, endpoints }],
    })
}

/// An endpoint address, refused where kube-apiserver's validation refuses it (loopback,
/// link-local, unspecified, multicast): a manifests directory is not validated by an apiserver,
/// and an endpoint at 127.0.0.1 would make this node (or, through the tunnel, another) dial
/// itself.
fn endpoint_ip(text: &str) -> std::result::Result<IpAddr, String> {
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("endpoint address '{text}' is not an IP"))?;
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    let refused = if ip.is_loopback() {
        Some("loopback")
    } else if link_local {
        Some("link-local")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() {
        Some("multicast")
    } else {
        None
    };
    match refused {
        Some(range) => Err(format!(
            "endpoint address '{text}' is {range}, which the API server refuses too"
        )),
        None => Ok(ip),
    }
}

/// Converts a core v1 Endpoints object (used when the server has no EndpointSlices).
pub fn endpoints(eps: &Endpoints) -> Result<EndpointSetSpec> {
    let kind = ResourceKind::Endpoints;
    let key = object_key(&eps.metadata, true);
    require_name(kind, &key)?;
    let mut subsets = Vec::new();
    for subset in eps.subsets.iter().flatten() {
        let mut ports = Vec::new();
        for p in subset.ports.iter().flatten() {
            let port = port_number(p.port, "subsets[].ports[].port")
                .map_err(|r| invalid(kind, &key, r))?;
            let protocol = protocol(p.protocol.as_ref()).map_err(|r| invalid(kind, &key, r))?;
            ports.push(EndpointPortSpec {
                name: edgemesh_model::port_name(p.name.as_deref().unwrap_or_default()),
                protocol,
                port,
            });
        }
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, false));
        let mut endpoints = Vec::new();
        for (address, ready) in ready.chain(not_ready) {
            let ip = endpoint_ip(&address.ip).map_err(|reason| invalid(kind, &key, reason))?;
            endpoints.push(EndpointSpec {
                ip,
                ready,
                node_name: address.node_name.as_deref().map(edgemesh_model::node_name),
                hostname: address.hostname.as_deref().map(ThinStr::from),
            });
        }
        ports.shrink_to_fit();
        endpoints.shrink_to_fit();
        subsets.push(EndpointSubset { ports, endpoints });
    }
    subsets.shrink_to_fit();
    Ok(EndpointSetSpec {
        service: key.clone(),
        key,
        subsets,
    })
}

/// Converts a Node (only its name and addresses matter to the mesh).
pub fn node(node: &Node) -> Result<NodeSpec> {
    let key = object_key(&node.metadata, false);
    require_name(ResourceKind::Node, &key)?;
    let addresses = node
        .status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| {
            Some(NodeAddress {
                kind: a.type_.clone(),
                ip: a.address.parse().ok()?,
            })
        })
        .collect();
    Ok(NodeSpec {
        name: key.name.to_string(),
        addresses,
        pod_cidrs: pod_cidrs(node),
    })
}

/// `spec.podCIDRs`, else `spec.podCIDR`; an entry that does not parse is left out (the node's
/// pods are then answered only if another entry or the allow-list covers them).
fn pod_cidrs(node: &Node) -> Vec<edgemesh_model::Cidr> {
    let Some(spec) = &node.spec else {
        return Vec::new();
    };
    let listed = spec.pod_cidrs.iter().flatten();
    let texts: Vec<&String> = match listed.clone().next() {
        Some(_) => listed.collect(),
        None => spec.pod_cidr.iter().collect(),
    };
    texts.into_iter().filter_map(|t| t.parse().ok()).collect()
}

/// Converts an Istio DestinationRule (any served version), given as JSON so that unknown fields
/// and versions are tolerated. Read: `spec.trafficPolicy.loadBalancer`, `spec.host` and
/// `spec.subsets[].{name, labels}` (a subset's own `trafficPolicy` is not read).
pub fn destination_rule(value: &Value) -> Result<DestinationRuleSpec> {
    let kind = ResourceKind::DestinationRule;
    let key = istio_key(kind, value)?;
    let lb = value.pointer("/spec/trafficPolicy/loadBalancer");
    let policy = lb
        .map_or(Ok(LbPolicy::default()), lb_policy)
        .map_err(|r| invalid(kind, &key, r))?;
    let host = value
        .pointer("/spec/host")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let subsets = match value.pointer("/spec/subsets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| subset(item).map_err(|r| format!("spec.subsets[{i}].{r}")))
            .collect::<std::result::Result<_, _>>()
            .map_err(|r| invalid(kind, &key, r))?,
        Some(_) => return Err(invalid(kind, &key, "spec.subsets: expected a list")),
    };
    Ok(DestinationRuleSpec {
        key,
        policy,
        host,
        subsets,
    })
}

/// One `spec.subsets[]` entry: `name` required, `labels` a map of strings (absent: every pod).
fn subset(item: &Value) -> std::result::Result<SubsetSpec, String> {
    let name = match item.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => return Err("name is missing".into()),
    };
    let labels = match item.get("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(v) => Ok((k.clone(), v.to_string())),
                None => Err(format!("labels.{k}: expected a string")),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(_) => return Err("labels: expected a map".into()),
    };
    Ok(SubsetSpec { name, labels })
}

/// What the gateway reads of a Pod: name, namespace, labels and `status.podIP`.
pub fn pod(pod: &Pod) -> Result<PodSpec> {
    let kind = ResourceKind::Pod;
    let key = object_key(&pod.metadata, true);
    require_name(kind, &key)?;
    let ip = match pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()) {
        None | Some("") => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| invalid(kind, &key, format!("status.podIP {text:?} is not an IP")))?,
        ),
    };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    Ok(PodSpec { key, ip, labels })
}

/// The key of an Istio object given as JSON.
fn istio_key(kind: ResourceKind, value: &Value) -> Result<ObjectKey> {
    let meta: ObjectMeta =
        serde_json::from_value(value.get("metadata").cloned().unwrap_or_default())
            .map_err(|e| invalid(kind, &ObjectKey::new("", ""), format!("bad metadata: {e}")))?;
    let key = object_key(&meta, true);
    require_name(kind, &key)?;
    Ok(key)
}

/// The key and `spec` of an Istio object whose spec is required.
fn istio_object(kind: ResourceKind, value: &Value) -> Result<(ObjectKey, &Value)> {
    let key = istio_key(kind, value)?;
    match value.get("spec") {
        Some(spec @ Value::Object(_)) => Ok((key, spec)),
        Some(Value::Null) | None => Err(invalid(kind, &key, "spec is missing")),
        Some(_) => Err(invalid(kind, &key, "spec: expected a map")),
    }
}

/// Istio's `LoadBalancerSettings`, restricted to what EdgeMesh supports.
fn lb_policy(lb: &Value) -> std::result::Result<LbPolicy, String> {
    if let Some(simple) = lb.get("simple") {
        return match simple.as_str() {
            Some("ROUND_ROBIN") | Some("UNSPECIFIED") => Ok(LbPolicy::RoundRobin),
            Some("RANDOM") => Ok(LbPolicy::Random),
            _ => Err(format!(
                "trafficPolicy.loadBalancer.simple {simple} is not supported \
                 (supported: ROUND_ROBIN, RANDOM, or consistentHash)"
            )),
        };
    }
    let Some(hash) = lb.get("consistentHash") else {
        return Err("trafficPolicy.loadBalancer has neither simple nor consistentHash".into());
    };
    if let Some(header) = hash.get("httpHeaderName").and_then(Value::as_str) {
        return Ok(LbPolicy::ConsistentHash(HashKey::HttpHeader(
            header.to_ascii_lowercase(),
        )));
    }
    if hash.get("useSourceIp").and_then(Value::as_bool) == Some(true) {
        return Ok(LbPolicy::ConsistentHash(HashKey::SourceIp));
    }
    Err(format!(
        "trafficPolicy.loadBalancer.consistentHash {hash} is not supported \
         (supported: httpHeaderName, useSourceIp: true)"
    ))
}

mod ingress;
pub use ingress::{gateway, tls_secret, virtual_service};

#[cfg(test)]
mod exposure_tests;
#[cfg(test)]
mod tests;
