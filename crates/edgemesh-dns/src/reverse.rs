//! IP → names of the cluster zone, built once per Snapshot and swapped, never per query.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;
use edgemesh_model::Snapshot;
use foldhash::fast::RandomState as FastHash;
use hickory_proto::rr::Name;

use crate::zone::Zone;

/// PTR targets by IP: ClusterIPs name their service, endpoint IPs name the endpoint.
#[derive(Debug, Default)]
pub struct ReverseIndex {
    names: HashMap<IpAddr, Vec<Name>, FastHash>,
}

impl ReverseIndex {
    /// Builds the index of every service in `snapshot` (services first, then endpoints, each in
    /// the Snapshot's key order, so the result is deterministic).
    pub fn build(zone: &Zone, snapshot: &Snapshot) -> Self {
        let mut names: HashMap<IpAddr, Vec<Name>, FastHash> = HashMap::default();
        for service in snapshot.services.values() {
            let Some(name) = zone.service_name(&service.key) else {
                continue;
            };
            for ip in service.cluster_ips() {
                names.entry(*ip).or_default().push(name.clone());
            }
        }
        for service in snapshot.services.values() {
            for endpoint in &service.endpoints {
                if let Some(name) = zone.endpoint_name(&service.key, endpoint) {
                    names.entry(endpoint.ip).or_default().push(name);
                }
            }
        }
        Self { names }
    }

    pub fn names(&self, ip: IpAddr) -> Option<&[Name]> {
        self.names.get(&ip).map(Vec::as_slice)
    }
}

/// The index of the Snapshot last asked about. The Snapshot is identified by its allocation
/// (held weakly, so the address cannot be reused while we compare with it), not only by its
/// version number, so a republished Snapshot with a reused version is still noticed.
#[derive(Debug, Default)]
pub struct ReverseCache {
    current: ArcSwapOption<(Weak<Snapshot>, ReverseIndex)>,
}

impl ReverseCache {
    pub fn get(
        &self,
        zone: &Zone,
        snapshot: &Arc<Snapshot>,
    ) -> Arc<(Weak<Snapshot>, ReverseIndex)> {
        if let Some(cached) = self.current.load_full()
            && std::ptr::eq(cached.0.as_ptr(), Arc::as_ptr(snapshot))
        {
            return cached;
        }
        // Two queries racing here both build; the last store wins. Both results are correct.
        let fresh = Arc::new((
            Arc::downgrade(snapshot),
            ReverseIndex::build(zone, snapshot),
        ));
        self.current.store(Some(fresh.clone()));
        fresh
    }
}
