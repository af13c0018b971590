//! The catalog: every validated object the sources currently report, tagged with its source.
//!
//! Sources apply changes as they arrive (cheap map updates); [`Catalog::build_snapshot`] is called
//! off the hot path, debounced, to produce the next immutable [`Snapshot`](crate::Snapshot).

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use foldhash::fast::RandomState as FastHash;
use hashbrown::{HashTable, hash_table};

use crate::ingress::{GatewaySpec, TlsSecretSpec, VirtualServiceSpec};
use crate::spec::{
    DestinationRuleSpec, EndpointSetSpec, NodeSpec, ObjectKey, PodSpec, ServiceSpec,
};

/// Where an object came from. A relist of one source never removes another source's objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceId {
    KubeApi,
    Manifests,
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceId::KubeApi => "kube-api",
            SourceId::Manifests => "manifests",
        })
    }
}

/// The kinds of object the catalog holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Service,
    EndpointSlice,
    Endpoints,
    DestinationRule,
    Node,
    Gateway,
    VirtualService,
    Secret,
    Pod,
}

impl ResourceKind {
    /// What the agent reads (and waits for before it is ready).
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Service,
        ResourceKind::EndpointSlice,
        ResourceKind::Endpoints,
        ResourceKind::DestinationRule,
        ResourceKind::Node,
    ];

    /// What only the gateway reads, on top of [`Self::ALL`].
    pub const INGRESS: [ResourceKind; 4] = [
        ResourceKind::Gateway,
        ResourceKind::VirtualService,
        ResourceKind::Secret,
        ResourceKind::Pod,
    ];

    /// The Kubernetes `kind` name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Service => "Service",
            ResourceKind::EndpointSlice => "EndpointSlice",
            ResourceKind::Endpoints => "Endpoints",
            ResourceKind::DestinationRule => "DestinationRule",
            ResourceKind::Node => "Node",
            ResourceKind::Gateway => "Gateway",
            ResourceKind::VirtualService => "VirtualService",
            ResourceKind::Secret => "Secret",
            ResourceKind::Pod => "Pod",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `kind namespace/name` of one object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    pub kind: ResourceKind,
    pub key: ObjectKey,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

/// One validated object, held by a shared pointer: the catalog stores each at its own size in a
/// 16-byte slot (an inline spec would size every slot by the largest variant), and cloning one
/// never copies its spec. So the manifests source's view of its files, the relists it sends and
/// the catalog hold one spec between them, and the Snapshot shares it too (a Service's spec with
/// its [`Service`](crate::Service), the ingress objects in
/// [`Ingress`](crate::ingress::Ingress)). Two resources compare equal at once when they point
/// to the same spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    Service(Arc<ServiceSpec>),
    EndpointSlice(Arc<EndpointSetSpec>),
    Endpoints(Arc<EndpointSetSpec>),
    DestinationRule(Arc<DestinationRuleSpec>),
    Node(Arc<NodeSpec>),
    Gateway(Arc<GatewaySpec>),
    VirtualService(Arc<VirtualServiceSpec>),
    Secret(Arc<TlsSecretSpec>),
    Pod(Arc<PodSpec>),
}

impl Resource {
    pub fn reference(&self) -> ResourceRef {
        let (kind, key) = self.kind_and_key();
        let key = match key {
            Ok(key) => key.clone(),
            Err(node) => ObjectKey::cluster(node),
        };
        ResourceRef { kind, key }
    }

    /// What [`Self::reference`] names, without building it (a Node's key would be a new one).
    fn identity(&self) -> Identity<'_> {
        match self.kind_and_key() {
            (kind, Ok(key)) => (kind, &key.namespace, &key.name),
            (kind, Err(node)) => (kind, "", node),
        }
    }

    /// The object's kind and key: the spec's own, or (`Err`) a Node's name, which has no key of
    /// its own (nodes are cluster-scoped).
    fn kind_and_key(&self) -> (ResourceKind, Result<&ObjectKey, &str>) {
        match self {
            Resource::Service(s) => (ResourceKind::Service, Ok(&s.key)),
            Resource::EndpointSlice(e) => (ResourceKind::EndpointSlice, Ok(&e.key)),
            Resource::Endpoints(e) => (ResourceKind::Endpoints, Ok(&e.key)),
            Resource::DestinationRule(d) => (ResourceKind::DestinationRule, Ok(&d.key)),
            Resource::Node(n) => (ResourceKind::Node, Err(&n.name)),
            Resource::Gateway(g) => (ResourceKind::Gateway, Ok(&g.key)),
            Resource::VirtualService(v) => (ResourceKind::VirtualService, Ok(&v.key)),
            Resource::Secret(s) => (ResourceKind::Secret, Ok(&s.key)),
            Resource::Pod(p) => (ResourceKind::Pod, Ok(&p.key)),
        }
    }

    /// The Service this object is an input of, for the objects a Service is built from: itself,
    /// its endpoints, and the DestinationRule named like it.
    pub(crate) fn service(&self) -> Option<&ObjectKey> {
        match self {
            Resource::Service(s) => Some(&s.key),
            Resource::EndpointSlice(e) | Resource::Endpoints(e) => Some(&e.service),
            Resource::DestinationRule(d) => Some(&d.key),
            _ => None,
        }
    }
}

/// 24 bytes: the table holds one slot per object with room to grow, and a slot as large as the
/// largest spec (~180 bytes) made the table alone 7.9 MB at 10,000 Services (massif); each
/// [`Resource`] points to its spec, allocated at its own size.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) source: SourceId,
    pub(crate) resource: Resource,
}

/// The catalog's objects, found by [`ResourceRef`] without holding one: the kind and key are
/// read from the resource itself. A map keyed by `ResourceRef` spent 40 of its 64 bytes a slot on
/// a copy of what the spec already says (~100 B a service at 100,000 services, where a Service
/// and its EndpointSlice take two slots).
#[derive(Clone, Debug, Default)]
pub(crate) struct Entries {
    table: HashTable<Entry>,
    /// A fast non-cryptographic hash, as the Snapshot's frontend index: names are what the API
    /// server accepted, and an upsert or lookup costs a third of SipHash's.
    hasher: FastHash,
}

/// What an entry is found by: its kind, namespace and name.
type Identity<'a> = (ResourceKind, &'a str, &'a str);

fn hash_of(hasher: &FastHash, (kind, namespace, name): Identity<'_>) -> u64 {
    let mut h = hasher.build_hasher();
    kind.hash(&mut h);
    namespace.hash(&mut h);
    name.hash(&mut h);
    h.finish()
}

impl Entries {
    fn find(&self, wanted: Identity<'_>) -> Option<&Entry> {
        let hash = hash_of(&self.hasher, wanted);
        self.table.find(hash, |e| e.resource.identity() == wanted)
    }

    fn find_mut(&mut self, wanted: Identity<'_>) -> Option<&mut Entry> {
        let hash = hash_of(&self.hasher, wanted);
        self.table
            .find_mut(hash, |e| e.resource.identity() == wanted)
    }

    /// Adds `entry`, or replaces the one of the same kind and key (returned).
    fn insert(&mut self, entry: Entry) -> Option<Entry> {
        let wanted = entry.resource.identity();
        let hasher = &self.hasher;
        let slot = self.table.entry(
            hash_of(hasher, wanted),
            |e| e.resource.identity() == wanted,
            |e| hash_of(hasher, e.resource.identity()),
        );
        match slot {
            hash_table::Entry::Occupied(mut slot) => Some(std::mem::replace(slot.get_mut(), entry)),
            hash_table::Entry::Vacant(slot) => {
                slot.insert(entry);
                None
            }
        }
    }

    fn remove(&mut self, wanted: Identity<'_>) -> Option<Entry> {
        let hash = hash_of(&self.hasher, wanted);
        let found = self
            .table
            .find_entry(hash, |e| e.resource.identity() == wanted)
            .ok()?;
        Some(found.remove().0)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter()
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

impl ResourceRef {
    fn identity(&self) -> Identity<'_> {
        (self.kind, &self.key.namespace, &self.key.name)
    }
}

/// Every object currently known, plus which (source, kind) pairs have completed a first listing.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub(crate) entries: Entries,
    synced: HashSet<(SourceId, ResourceKind)>,
    /// What changed since [`Catalog::build_next`] last ran.
    pub(crate) changes: Changes,
}

/// What changed since the last Snapshot, so that the next one rebuilds only the services a
/// change concerns: at 100,000 services a full rebuild costs ~150 ms, one service microseconds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Changes {
    /// Services whose Service object, endpoints or DestinationRule changed.
    pub(crate) services: HashSet<ObjectKey, FastHash>,
    /// Something no single service owns changed (a Node, an ingress object, a subset rule), or
    /// too many services did: the next build is a full one.
    pub(crate) everything: bool,
}

/// Beyond this many changed services the set is dropped and the next build is a full one.
const MAX_TRACKED_SERVICES: usize = 4096;

impl Changes {
    fn note(&mut self, resource: &Resource) {
        // A DestinationRule with subsets is also an input of the gateway's routes.
        let gateway_input =
            matches!(resource, Resource::DestinationRule(d) if !d.subsets.is_empty());
        let Some(service) = resource.service().filter(|_| !gateway_input) else {
            return self.everything();
        };
        if !self.everything {
            self.services.insert(service.clone());
            if self.services.len() > MAX_TRACKED_SERVICES {
                self.everything();
            }
        }
    }

    fn everything(&mut self) {
        self.everything = true;
        self.services = HashSet::default();
    }
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one object (an identical copy changes nothing).
    pub fn upsert(&mut self, source: SourceId, resource: Resource) {
        if let Some(entry) = self.entries.find_mut(resource.identity())
            && entry.resource == resource
        {
            entry.source = source;
            return;
        }
        self.changes.note(&resource);
        if let Some(replaced) = self.entries.insert(Entry { source, resource }) {
            // A slice moved to another Service changes both.
            self.changes.note(&replaced.resource);
        }
    }

    /// Removes one object; returns whether it was present.
    pub fn remove(&mut self, reference: &ResourceRef) -> bool {
        let Some(removed) = self.entries.remove(reference.identity()) else {
            return false;
        };
        self.changes.note(&removed.resource);
        true
    }

    /// Replaces everything `source` reported for `kind` with `items` (a full relist), and marks
    /// the pair as synced. Objects the relist leaves as they were count as unchanged.
    pub fn replace_kind(&mut self, source: SourceId, kind: ResourceKind, items: Vec<Resource>) {
        let mut stale: HashSet<ResourceRef> = self
            .entries
            .iter()
            .filter(|e| e.resource.identity().0 == kind && e.source == source)
            .map(|e| e.resource.reference())
            .collect();
        for item in items {
            stale.remove(&item.reference());
            self.upsert(source, item);
        }
        for reference in &stale {
            self.remove(reference);
        }
        self.mark_synced(source, kind);
    }

    /// Records that `source` has delivered its complete view of `kind` (possibly empty, e.g. a
    /// cluster without the Istio CRDs).
    pub fn mark_synced(&mut self, source: SourceId, kind: ResourceKind) {
        self.synced.insert((source, kind));
    }

    pub fn is_synced(&self, source: SourceId, kind: ResourceKind) -> bool {
        self.synced.contains(&(source, kind))
    }

    /// Number of objects of all kinds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    pub fn get(&self, reference: &ResourceRef) -> Option<&Resource> {
        self.entries.find(reference.identity()).map(|e| &e.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{NodeSpec, ServiceKind};

    fn svc(name: &str) -> Resource {
        Resource::Service(Arc::new(ServiceSpec {
            key: ObjectKey::new("ns", name),
            kind: ServiceKind::Headless,
            ports: vec![],
            has_proxy_name_label: false,
            session_affinity: None,
        }))
    }

    #[test]
    fn relist_replaces_only_its_own_source_and_kind() {
        let mut c = Catalog::new();
        c.upsert(SourceId::KubeApi, svc("a"));
        c.upsert(SourceId::Manifests, svc("b"));
        c.upsert(
            SourceId::KubeApi,
            Resource::Node(Arc::new(NodeSpec {
                name: "n".into(),
                ..NodeSpec::default()
            })),
        );
        c.replace_kind(SourceId::KubeApi, ResourceKind::Service, vec![svc("c")]);
        let names: HashSet<_> = c
            .entries
            .iter()
            .map(|e| e.resource.reference().key.name)
            .collect();
        assert_eq!(names, HashSet::from(["b".into(), "c".into(), "n".into()]));
        assert!(c.is_synced(SourceId::KubeApi, ResourceKind::Service));
        assert!(!c.is_synced(SourceId::KubeApi, ResourceKind::Node));
    }

    /// Entries are found by the kind and key their resource names, a Node by its name alone.
    #[test]
    fn objects_are_found_by_kind_and_key() {
        let mut c = Catalog::new();
        let node = Resource::Node(Arc::new(NodeSpec {
            name: "web".into(),
            ..NodeSpec::default()
        }));
        c.upsert(SourceId::KubeApi, svc("web"));
        c.upsert(SourceId::KubeApi, node.clone());
        for _ in 0..100 {
            c.upsert(SourceId::KubeApi, svc(&format!("filler-{}", c.len())));
        }
        assert_eq!(c.len(), 102);
        assert_eq!(c.get(&node.reference()), Some(&node));
        assert_eq!(c.get(&svc("web").reference()), Some(&svc("web")));
        let other_namespace = ResourceRef {
            kind: ResourceKind::Service,
            key: ObjectKey::new("other", "web"),
        };
        assert_eq!(c.get(&other_namespace), None);
        c.upsert(SourceId::Manifests, svc("web"));
        assert_eq!(c.len(), 102, "the same object replaced, not added");
        assert!(c.remove(&node.reference()));
        assert_eq!(c.get(&node.reference()), None);
        assert_eq!(c.get(&svc("web").reference()), Some(&svc("web")));
    }

    #[test]
    fn remove_reports_presence() {
        let mut c = Catalog::new();
        c.upsert(SourceId::Manifests, svc("a"));
        let r = svc("a").reference();
        assert!(c.remove(&r));
        assert!(!c.remove(&r));
        assert!(c.is_empty());
    }
}
