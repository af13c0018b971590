//! IP → names of the cluster zone, built once per Snapshot and swapped, never per query.
//!
//! Compact on purpose (10,000 services with their endpoints must cost little memory): a sorted
//! array of (IP, service, endpoint) triples searched by bisection, names built only on a hit.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;
use edgemesh_model::{Service, Snapshot};
use hickory_proto::rr::Name;

use crate::zone::Zone;

/// No endpoint: the entry is the service's ClusterIP.
const CLUSTER_IP: u32 = u32::MAX;

/// PTR targets by IP: ClusterIPs name their service, endpoint IPs name the endpoint.
#[derive(Debug, Default)]
pub struct ReverseIndex {
    services: Vec<Arc<Service>>,
    /// (ip, index into `services`, endpoint index or [`CLUSTER_IP`]), sorted by ip, services'
    /// ClusterIPs before endpoints for the same ip.
    entries: Vec<(IpAddr, u32, u32)>,
}

impl ReverseIndex {
    /// Builds the index of every service in `snapshot`, in the Snapshot's key order, so the
    /// result is deterministic.
    pub fn build(snapshot: &Snapshot) -> Self {
        let services: Vec<Arc<Service>> = snapshot.services.values().cloned().collect();
        let mut entries = Vec::new();
        for (s, service) in (0u32..).zip(&services) {
            entries.extend(service.cluster_ips().iter().map(|ip| (*ip, s, CLUSTER_IP)));
            let endpoints = (0u32..).zip(&service.endpoints);
            entries.extend(endpoints.map(|(e, endpoint)| (endpoint.ip, s, e)));
        }
        // Stable: equal IPs keep ClusterIP-before-endpoint within a service and key order.
        entries.sort_by_key(|(ip, _, e)| (*ip, *e != CLUSTER_IP));
        entries.shrink_to_fit();
        Self { services, entries }
    }

    /// The names `ip` has in `zone` (empty when the IP is not ours).
    pub fn names(&self, zone: &Zone, ip: IpAddr) -> Vec<Name> {
        let start = self.entries.partition_point(|(other, _, _)| *other < ip);
        self.entries[start..]
            .iter()
            .take_while(|(other, _, _)| *other == ip)
            .filter_map(|(_, s, e)| {
                let service = self.services.get(*s as usize)?;
                if *e == CLUSTER_IP {
                    return zone.service_name(service.key());
                }
                let endpoint = service.endpoints.get(*e as usize)?;
                zone.endpoint_name(service.key(), endpoint)
            })
            .collect()
    }
}

/// The index of the Snapshot last asked about. The Snapshot is identified by its allocation
/// (held weakly, so the address cannot be reused while we compare with it), not by its version
/// number, so a republished Snapshot with a reused version is still noticed.
#[derive(Debug, Default)]
pub struct ReverseCache {
    current: ArcSwapOption<(Weak<Snapshot>, ReverseIndex)>,
}

impl ReverseCache {
    pub fn get(&self, snapshot: &Arc<Snapshot>) -> Arc<(Weak<Snapshot>, ReverseIndex)> {
        if let Some(cached) = self.current.load_full()
            && std::ptr::eq(cached.0.as_ptr(), Arc::as_ptr(snapshot))
        {
            return cached;
        }
        // Two queries racing here both build; the last store wins. Both results are correct.
        let fresh = Arc::new((Arc::downgrade(snapshot), ReverseIndex::build(snapshot)));
        self.current.store(Some(fresh.clone()));
        fresh
    }
}
