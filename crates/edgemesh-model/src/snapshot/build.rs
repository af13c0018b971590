//! Catalog → Snapshot: join services with their endpoints and policy, apply the service filter.
//!
//! Pure and deterministic: the same catalog and options give the same snapshot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use foldhash::fast::RandomState as FastHash;

use super::{
    Backend, BuildOptions, BuildReport, Endpoint, Frontend, ProxyDecision, Service, ServicePort,
    SkipReason, Snapshot, SnapshotChanges,
};
use crate::catalog::{Catalog, Resource};
use crate::ingress::Ingress;
use crate::spec::{
    DestinationRuleSpec, EndpointSetSpec, EndpointSubset, LbPolicy, NodeSpec, ObjectKey, Protocol,
    ServiceFilterMode, ServiceKind, ServicePortSpec, ServiceSpec,
};

/// The catalog's objects grouped by the service they belong to.
#[derive(Default)]
struct Grouped<'a> {
    services: Vec<&'a Arc<ServiceSpec>>,
    slices: HashMap<&'a ObjectKey, Vec<&'a EndpointSetSpec>, FastHash>,
    endpoints: HashMap<&'a ObjectKey, Vec<&'a EndpointSetSpec>, FastHash>,
    rules: HashMap<&'a ObjectKey, &'a DestinationRuleSpec, FastHash>,
    nodes: BTreeMap<String, NodeSpec>,
    ingress: Ingress,
}

impl<'a> Grouped<'a> {
    fn new(catalog: &'a Catalog) -> Self {
        let mut g = Grouped::default();
        for entry in catalog.entries.iter() {
            g.add(&entry.resource);
        }
        // Deterministic order, so that conflicts are always resolved the same way.
        g.services.sort_by(|a, b| a.key.cmp(&b.key));
        g
    }

    /// Only what the services `keys` are built from (their Service, endpoints and rule).
    fn of_services(catalog: &'a Catalog, keys: &HashSet<ObjectKey, FastHash>) -> Self {
        let mut g = Grouped::default();
        for entry in catalog.entries.iter() {
            let Some(owner) = entry.resource.service() else {
                continue;
            };
            // A change touches a service or a few: comparing names is cheaper than hashing
            // each of the catalog's owners.
            let wanted = match keys.len() {
                0..=16 => keys.iter().any(|key| key == owner),
                _ => keys.contains(owner),
            };
            if wanted {
                g.add(&entry.resource);
            }
        }
        g
    }

    /// Files one object where the build looks for it.
    fn add(&mut self, resource: &'a Resource) {
        let g = self;
        match resource {
            Resource::Service(s) => g.services.push(s),
            Resource::EndpointSlice(e) => g.slices.entry(&e.service).or_default().push(e),
            Resource::Endpoints(e) => g.endpoints.entry(&e.service).or_default().push(e),
            Resource::DestinationRule(d) => {
                g.rules.insert(&d.key, d);
                if !d.subsets.is_empty() {
                    g.ingress
                        .destination_rules
                        .insert(d.key.clone(), Arc::clone(d));
                }
            }
            Resource::Pod(p) => {
                g.ingress.pods.insert(p.key.clone(), Arc::clone(p));
            }
            Resource::Node(n) => {
                g.nodes.insert(n.name.clone(), (**n).clone());
            }
            Resource::Gateway(spec) => {
                g.ingress
                    .gateways
                    .insert(spec.key.clone(), Arc::clone(spec));
            }
            Resource::VirtualService(spec) => {
                g.ingress
                    .virtual_services
                    .insert(spec.key.clone(), Arc::clone(spec));
            }
            Resource::Secret(spec) => {
                g.ingress.secrets.insert(spec.key.clone(), Arc::clone(spec));
            }
        }
    }

    /// EndpointSlices win over core Endpoints when both exist for a service.
    fn endpoint_sets(&self, service: &ObjectKey) -> &[&'a EndpointSetSpec] {
        self.slices
            .get(service)
            .or_else(|| self.endpoints.get(service))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

impl Catalog {
    /// Builds the snapshot the data path will read. Never fails: anything odd is reported in
    /// [`BuildReport::warnings`] and handled conservatively.
    pub fn build_snapshot(&self, options: BuildOptions) -> (Snapshot, BuildReport) {
        let grouped = Grouped::new(self);
        let mut report = BuildReport::default();
        let mut snapshot = Snapshot {
            version: options.version,
            ..Snapshot::default()
        };
        snapshot.frontends.reserve(grouped.services.len());
        let mut services = Vec::with_capacity(grouped.services.len());
        for spec in &grouped.services {
            let service = grouped.service(spec, options, &mut report);
            snapshot.contested |= !index_frontends(&service, &mut snapshot.frontends, &mut report);
            services.push((spec.key.clone(), service));
        }
        // Already sorted by key, so the map is bulk-built without per-insert key comparisons.
        snapshot.services = services.into_iter().collect();
        snapshot.nodes = grouped.nodes;
        snapshot.ingress = Arc::new(grouped.ingress);
        report.warnings.sort();
        (snapshot, report)
    }

    /// The snapshot after `previous` (which this catalog built, with the same options but the
    /// version): only the services changed since then are rebuilt when that gives the same
    /// result as a full build, which [`Self::build_snapshot`] makes otherwise. Warnings are those
    /// of the rebuilt services.
    pub fn build_next(
        &mut self,
        previous: &Snapshot,
        options: BuildOptions,
    ) -> (Snapshot, BuildReport) {
        let changes = std::mem::take(&mut self.changes);
        let partial = !changes.everything
            && previous.version > 0
            && !previous.contested
            && changes.services.len() <= previous.services.len() / 8 + 1;
        partial
            .then(|| self.rebuild_services(previous, &changes.services, options))
            .flatten()
            .unwrap_or_else(|| self.build_snapshot(options))
    }

    /// `previous` with the services `keys` rebuilt; `None` when a frontend of one of them is
    /// claimed by another service (which one keeps it is decided by a full build). `previous`
    /// has no contested frontend, so neither has the result.
    fn rebuild_services(
        &self,
        previous: &Snapshot,
        keys: &HashSet<ObjectKey, FastHash>,
        options: BuildOptions,
    ) -> Option<(Snapshot, BuildReport)> {
        let grouped = Grouped::of_services(self, keys);
        let mut report = BuildReport::default();
        let mut services = previous.services.clone();
        let mut frontends = previous.frontends.clone();
        for key in keys {
            if let Some(old) = services.remove(key) {
                unindex_frontends(&old, &mut frontends)?;
            }
        }
        for spec in &grouped.services {
            let service = grouped.service(spec, options, &mut report);
            if !index_frontends(&service, &mut frontends, &mut report) {
                return None;
            }
            services.insert(spec.key.clone(), service);
        }
        let mut changed: Vec<ObjectKey> = keys.iter().cloned().collect();
        changed.sort();
        report.warnings.sort();
        let snapshot = Snapshot {
            version: options.version,
            services,
            nodes: previous.nodes.clone(),
            ingress: Arc::clone(&previous.ingress),
            frontends,
            contested: false,
            changes: Some(Arc::new(SnapshotChanges {
                since: previous.version,
                services: changed,
            })),
        };
        Some((snapshot, report))
    }
}

impl Grouped<'_> {
    /// The data path's view of the Service `spec`, with its endpoints and rule.
    fn service(
        &self,
        spec: &Arc<ServiceSpec>,
        options: BuildOptions,
        report: &mut BuildReport,
    ) -> Arc<Service> {
        let sets = self.endpoint_sets(&spec.key);
        let rule = self.rules.get(&spec.key).copied();
        let mut service = build_service(spec, sets, rule, options.filter_mode, report);
        if let Some(hub) = options.apiserver_via {
            send_apiserver_to(hub, &mut service);
        }
        Arc::new(service)
    }
}

fn build_service(
    spec: &Arc<ServiceSpec>,
    sets: &[&EndpointSetSpec],
    rule: Option<&DestinationRuleSpec>,
    filter_mode: ServiceFilterMode,
    report: &mut BuildReport,
) -> Service {
    let ports = spec
        .ports
        .iter()
        .map(|port| ServicePort {
            name: port.name.clone(),
            protocol: port.protocol,
            port: port.port,
            app_protocol: port.app_protocol.clone(),
            backends: backends_for(port, sets),
        })
        .collect();
    Service {
        spec: Arc::clone(spec),
        proxy: proxy_decision(spec, filter_mode),
        lb_policy: lb_policy(spec, rule, report),
        ports,
        endpoints: ready_endpoints(sets),
    }
}

/// `default/kubernetes`: the Service pods reach the apiserver by (`KUBERNETES_SERVICE_HOST`).
fn send_apiserver_to(hub: SocketAddr, service: &mut Service) {
    let key = service.key();
    if &*key.namespace != "default" || &*key.name != "kubernetes" {
        return;
    }
    let hub: Arc<[Backend]> = Arc::new([Backend {
        addr: hub,
        node_name: None,
    }]);
    for port in service
        .ports
        .iter_mut()
        .filter(|p| p.protocol == Protocol::Tcp)
    {
        port.backends = Arc::clone(&hub);
    }
}

fn proxy_decision(spec: &ServiceSpec, filter_mode: ServiceFilterMode) -> ProxyDecision {
    let skip = match &spec.kind {
        ServiceKind::Headless => Some(SkipReason::Headless),
        ServiceKind::ExternalName { .. } => Some(SkipReason::ExternalName),
        _ if !filter_mode.proxies(spec.has_proxy_name_label) => Some(SkipReason::FilteredByLabel),
        ServiceKind::ClusterIp { cluster_ips } | ServiceKind::Exposed { cluster_ips, .. }
            if cluster_ips.is_empty() =>
        {
            Some(SkipReason::NoClusterIp)
        }
        ServiceKind::ClusterIp { .. } | ServiceKind::Exposed { .. } => None,
    };
    skip.map_or(ProxyDecision::Proxied, ProxyDecision::Skipped)
}

/// ClientIP session affinity takes precedence over a DestinationRule, as in EdgeMesh: the rule's
/// policy is ignored and a warning names both objects.
fn lb_policy(
    spec: &ServiceSpec,
    rule: Option<&DestinationRuleSpec>,
    report: &mut BuildReport,
) -> LbPolicy {
    match (rule, spec.session_affinity) {
        (None, _) => LbPolicy::default(),
        (Some(rule), None) => rule.policy.clone(),
        (Some(rule), Some(_)) => {
            report.warnings.push(format!(
                "DestinationRule {} ignored: Service {} has sessionAffinity ClientIP, which takes \
                 precedence",
                rule.key, spec.key
            ));
            LbPolicy::default()
        }
    }
}

/// Ready backends of one service port, unique by address, in a stable order.
fn backends_for(port: &ServicePortSpec, sets: &[&EndpointSetSpec]) -> Arc<[Backend]> {
    let mut backends = Vec::new();
    for subset in sets.iter().flat_map(|s| &s.subsets) {
        let Some(target) = matching_port(port, subset) else {
            continue;
        };
        backends.extend(
            subset
                .endpoints
                .iter()
                .filter(|e| e.ready)
                .map(|ep| Backend {
                    addr: SocketAddr::new(ep.ip, target),
                    node_name: ep.node_name.clone(),
                }),
        );
    }
    // Sorting then deduplicating beats a hash set for the handful of endpoints a port has.
    backends.sort_by_key(|b| b.addr);
    backends.dedup_by_key(|b| b.addr);
    backends.into()
}

/// The endpoint port serving `port`: the one with the same name and protocol (that is how the
/// endpoints controller names them); for a single-port service, a lone port of the same protocol.
fn matching_port(port: &ServicePortSpec, subset: &EndpointSubset) -> Option<u16> {
    let same_protocol = || subset.ports.iter().filter(|p| p.protocol == port.protocol);
    same_protocol()
        .find(|p| p.name == port.name)
        .map(|p| p.port)
        .or_else(|| {
            let mut candidates = same_protocol();
            match (candidates.next(), candidates.next()) {
                (Some(only), None) if port.name.is_empty() || subset.ports.len() == 1 => {
                    Some(only.port)
                }
                _ => None,
            }
        })
}

fn ready_endpoints(sets: &[&EndpointSetSpec]) -> Vec<Endpoint> {
    let mut endpoints: Vec<Endpoint> = sets
        .iter()
        .flat_map(|s| &s.subsets)
        .flat_map(|subset| &subset.endpoints)
        .filter(|e| e.ready)
        .map(|e| Endpoint {
            ip: e.ip,
            node_name: e.node_name.clone(),
            hostname: e.hostname.clone(),
        })
        .collect();
    endpoints.sort_by_key(|e| e.ip);
    endpoints.dedup_by_key(|e| e.ip);
    // Collected through a filter, the vector has room for 4 or more: at 1 to 3 endpoints a
    // service, the usual, that was up to 192 bytes of nothing per service, kept as long as the
    // Snapshot.
    endpoints.shrink_to_fit();
    endpoints
}

type FrontendIndex = HashMap<Frontend, (Arc<Service>, usize), FastHash>;

/// Indexes the frontends of `service`; false when another service had claimed one of them
/// (a warning names both).
fn index_frontends(
    service: &Arc<Service>,
    frontends: &mut FrontendIndex,
    report: &mut BuildReport,
) -> bool {
    let mut unclaimed = true;
    if !service.is_proxied() {
        return unclaimed;
    }
    for (frontend, index) in service.frontends() {
        if let Some((other, _)) = frontends.get(&frontend) {
            report.warnings.push(format!(
                "Service {} and Service {} both claim {}; keeping {}",
                other.key(),
                service.key(),
                describe(&frontend),
                other.key()
            ));
            unclaimed = false;
            continue;
        }
        frontends.insert(frontend, (Arc::clone(service), index));
    }
    unclaimed
}

/// Removes the frontends of `service` from the index; `None` when one of them belongs to another
/// service (the two claimed it, and this one lost).
fn unindex_frontends(service: &Arc<Service>, frontends: &mut FrontendIndex) -> Option<()> {
    if !service.is_proxied() {
        return Some(());
    }
    for (frontend, _) in service.frontends() {
        match frontends.get(&frontend) {
            Some((owner, _)) if Arc::ptr_eq(owner, service) => {
                frontends.remove(&frontend);
            }
            _ => return None,
        }
    }
    Some(())
}

/// `ip:port/protocol`, or `node port port/protocol`, for warnings.
fn describe(frontend: &Frontend) -> String {
    if frontend.is_node_port() {
        format!("node port {}/{}", frontend.port, frontend.protocol)
    } else {
        format!("{}:{}/{}", frontend.ip, frontend.port, frontend.protocol)
    }
}

#[cfg(test)]
mod exposure_tests;
#[cfg(test)]
mod incremental_tests;
#[cfg(test)]
mod tests;
