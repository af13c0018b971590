//! Connections, errors and bytes per Service, for the services this node's proxy carried.
//!
//! A service gets its counters on its first connection through this proxy, so the series are
//! those of services in use from this node, not every Service of the cluster. Counters of
//! services that left the Snapshot are dropped when the table has doubled since it was last
//! pruned, which keeps it within twice the services in use (amortised O(1) per new service).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use edgemesh_copy::{Direction, Meter};
use edgemesh_model::{ObjectKey, Snapshot};
use edgemesh_telemetry::{Kind, Readings};

edgemesh_telemetry::counters! {
    /// One service's counters; connections hold an `Arc` to them.
    pub struct ServiceCounters => ServiceCountersSnapshot {
        /// TCP connections and UDP flows routed to the service.
        pub connections,
        /// Of those, reset or refused because no endpoint could be reached.
        pub errors,
        pub bytes_to_upstream,
        pub bytes_to_client,
    }
}

impl Meter for ServiceCounters {
    fn moved(&self, direction: Direction, bytes: u64) {
        let counter = match direction {
            Direction::AToB => &self.bytes_to_upstream,
            Direction::BToA => &self.bytes_to_client,
        };
        counter.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The table of [`ServiceCounters`] by service.
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    by_service: HashMap<ObjectKey, Arc<ServiceCounters>>,
    /// Size after the last prune; the next one comes when the table has doubled.
    pruned_at: usize,
}

/// Services below this many are never pruned: the table is small either way.
const PRUNE_FLOOR: usize = 64;

impl ServiceMetrics {
    /// The counters of `key`, made on its first connection; `snapshot` is the one the
    /// connection was routed with, against which departed services are pruned.
    pub(crate) fn of(&self, key: &ObjectKey, snapshot: &Snapshot) -> Arc<ServiceCounters> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counters) = table.by_service.get(key) {
            return Arc::clone(counters);
        }
        if table.by_service.len() >= (2 * table.pruned_at).max(PRUNE_FLOOR) {
            table
                .by_service
                .retain(|key, _| snapshot.service(key).is_some());
            table.pruned_at = table.by_service.len();
        }
        let counters = Arc::new(ServiceCounters::default());
        table.by_service.insert(key.clone(), Arc::clone(&counters));
        counters
    }

    /// Writes the per-service families, sorted by service so scrapes are stable.
    pub(crate) fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
        let mut rows: Vec<(ObjectKey, ServiceCountersSnapshot)> = {
            let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            let by_service = table.by_service.iter();
            by_service.map(|(k, c)| (k.clone(), c.snapshot())).collect()
        };
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let series = |value: fn(&ServiceCountersSnapshot) -> u64| -> Vec<_> {
            rows.iter()
                .map(|(k, c)| (service_labels(k), value(c)))
                .collect()
        };
        out.labelled(
            Kind::Counter,
            "edgemesh_proxy_service_connections",
            "TCP connections and UDP flows routed through the proxy, by service.",
            &series(|c| c.connections),
        )?;
        out.labelled(
            Kind::Counter,
            "edgemesh_proxy_service_errors",
            "Connections reset and UDP flows refused because no endpoint could be reached, by service.",
            &series(|c| c.errors),
        )?;
        let mut bytes = Vec::with_capacity(rows.len() * 2);
        for (key, c) in &rows {
            let mut to = |direction, value| {
                let mut labels = service_labels(key);
                labels.push(("direction", direction));
                bytes.push((labels, value));
            };
            to("to_upstream", c.bytes_to_upstream);
            to("to_client", c.bytes_to_client);
        }
        out.labelled(
            Kind::Counter,
            "edgemesh_proxy_service_bytes",
            "Bytes relayed by the proxy, by service and direction.",
            &bytes,
        )
    }
}

fn service_labels(key: &ObjectKey) -> Vec<(&str, &str)> {
    vec![("namespace", &key.namespace), ("service", &key.name)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgemesh_model::BuildOptions;
    use edgemesh_model::fixtures::large_catalog;

    fn key(i: usize) -> ObjectKey {
        ObjectKey::new("bench", format!("svc-{i}"))
    }

    #[test]
    fn departed_services_are_pruned_once_the_table_doubles() {
        // Services svc-0 .. svc-99 exist; svc-100 and above have left the cluster.
        let (snapshot, _) = large_catalog(100, 1).build_snapshot(BuildOptions::default());
        let metrics = ServiceMetrics::default();
        let len = || metrics.table.lock().unwrap().by_service.len();
        for i in 100..100 + PRUNE_FLOOR {
            metrics.of(&key(i), &snapshot);
        }
        assert_eq!(len(), PRUNE_FLOOR, "no prune below the floor");
        let first = metrics.of(&key(0), &snapshot);
        assert_eq!(len(), 1, "the departed were dropped, the newcomer kept");
        assert!(Arc::ptr_eq(&first, &metrics.of(&key(0), &snapshot)));
    }
}
