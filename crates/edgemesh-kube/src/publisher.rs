//! Applies source events to the catalog and publishes debounced Snapshots.
//!
//! Sources only send cheap events; the rebuild happens here, at most once per debounce window,
//! and the result is swapped into the [`SnapshotCell`] the data path reads without locking.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgemesh_model::{
    BuildOptions, Catalog, Resource, ResourceKind, ResourceRef, Snapshot, SnapshotCell, SourceId,
};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout_at;

use crate::Inputs;
use crate::readiness::Readiness;

/// What a source reports.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// An object was added or changed.
    Apply(SourceId, Resource),
    /// An object was deleted (or became invalid).
    Delete(SourceId, ResourceRef),
    /// The complete current set of one kind (initial list or relist).
    Relist(SourceId, ResourceKind, Vec<Resource>),
    /// The source will never report this kind (e.g. no Istio CRDs); count it as synced.
    NotServed(SourceId, ResourceKind),
}

/// Owns the catalog; the only writer of the Snapshot.
#[derive(Debug)]
pub struct Publisher {
    catalog: Catalog,
    options: BuildOptions,
    expected: Vec<(SourceId, ResourceKind)>,
    cell: Arc<SnapshotCell>,
    updates: watch::Sender<Arc<Snapshot>>,
    readiness: Arc<Readiness>,
    debounce: Duration,
    reported: HashSet<String>,
}

impl Publisher {
    /// `sources` are the sources that must each sync every kind of `inputs` (what the role
    /// reads, and nothing else) before the role is ready.
    pub fn new(
        sources: &[SourceId],
        inputs: Inputs,
        options: BuildOptions,
        debounce: Duration,
    ) -> Self {
        let expected: Vec<(SourceId, ResourceKind)> = sources
            .iter()
            .flat_map(|s| inputs.kinds().map(|k| (*s, k)))
            .collect();
        let (updates, _) = watch::channel(Arc::new(Snapshot::empty()));
        let readiness = Readiness::default();
        readiness.set_pending(expected.iter().map(describe).collect());
        Self {
            catalog: Catalog::new(),
            options,
            expected,
            cell: Arc::new(SnapshotCell::default()),
            updates,
            readiness: Arc::new(readiness),
            debounce,
            reported: HashSet::new(),
        }
    }

    /// Lock-free access to the current Snapshot, for the data path.
    pub fn cell(&self) -> Arc<SnapshotCell> {
        Arc::clone(&self.cell)
    }

    /// Change notifications, for control-plane consumers (proxier, DNS zone).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.updates.subscribe()
    }

    /// Registers the gauges of the published Snapshot.
    pub fn register(&self, registry: &mut edgemesh_telemetry::Registry) {
        crate::metrics::register(self.cell(), registry);
    }

    pub fn readiness(&self) -> Arc<Readiness> {
        Arc::clone(&self.readiness)
    }

    /// Runs until every sender of `events` is dropped.
    pub async fn run(mut self, mut events: mpsc::Receiver<SourceEvent>) {
        while let Some(first) = events.recv().await {
            self.apply(first);
            let deadline = tokio::time::Instant::now() + self.debounce;
            while let Ok(Some(event)) = timeout_at(deadline, events.recv()).await {
                self.apply(event);
            }
            self.publish();
        }
        tracing::debug!("all sources stopped; publisher exits");
    }

    fn apply(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Apply(source, resource) => self.catalog.upsert(source, resource),
            SourceEvent::Delete(_, reference) => {
                self.catalog.remove(&reference);
            }
            SourceEvent::Relist(source, kind, items) => {
                self.catalog.replace_kind(source, kind, items)
            }
            SourceEvent::NotServed(source, kind) => self.catalog.mark_synced(source, kind),
        }
    }

    fn publish(&mut self) {
        let started = Instant::now();
        self.options.version += 1;
        let previous = Arc::clone(&self.updates.borrow());
        let (snapshot, report) = self.catalog.build_next(&previous, self.options);
        drop(previous);
        self.report_new_warnings(report.warnings);
        let snapshot = Arc::new(snapshot);
        let pending: Vec<String> = self
            .expected
            .iter()
            .filter(|(s, k)| !self.catalog.is_synced(*s, *k))
            .map(describe)
            .collect();
        let synced = pending.is_empty();
        if !self.readiness.is_ready() {
            self.readiness.set_pending(pending);
        }
        // Marked before the Snapshot is sent: a consumer woken by it (the proxier, which
        // programs rules only from a complete Snapshot) must already see it as complete.
        if synced && !self.readiness.is_ready() {
            tracing::info!(
                version = snapshot.version,
                "all sources synced; agent is ready"
            );
            self.readiness.mark(snapshot.version);
        }
        self.cell.store(Arc::clone(&snapshot));
        self.updates.send_replace(Arc::clone(&snapshot));
        tracing::debug!(
            version = snapshot.version,
            services = snapshot.services.len(),
            frontends = snapshot.frontend_count(),
            rebuilt = snapshot.changes.as_ref().map(|c| c.services.len()),
            build_ms = started.elapsed().as_secs_f64() * 1e3,
            "snapshot published"
        );
    }

    /// Logs each distinct warning once, not at every rebuild.
    fn report_new_warnings(&mut self, warnings: Vec<String>) {
        for warning in warnings {
            if !self.reported.contains(&warning) {
                tracing::warn!(%warning, "snapshot");
                self.reported.insert(warning);
            }
        }
    }
}

/// A (source, kind) pair as `/readyz` names it: "kube-api EndpointSlice".
fn describe((source, kind): &(SourceId, ResourceKind)) -> String {
    format!("{source} {kind:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgemesh_model::fixtures::cluster_ip_service;

    fn service(name: &str) -> Resource {
        Resource::Service(cluster_ip_service("ns", name, "10.96.0.1".parse().unwrap(), 80).into())
    }

    #[tokio::test(start_paused = true)]
    async fn events_in_one_window_give_one_snapshot_and_readiness_waits_for_all_kinds() {
        let publisher = Publisher::new(
            &[SourceId::Manifests],
            Inputs::Agent,
            BuildOptions::default(),
            Duration::from_millis(50),
        );
        let cell = publisher.cell();
        let readiness = publisher.readiness();
        let mut updates = publisher.subscribe();
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(publisher.run(rx));

        tx.send(SourceEvent::Relist(
            SourceId::Manifests,
            ResourceKind::Service,
            vec![service("a")],
        ))
        .await
        .unwrap();
        tx.send(SourceEvent::Apply(SourceId::Manifests, service("b")))
            .await
            .unwrap();
        updates.changed().await.unwrap();
        let snap = cell.load();
        assert_eq!(snap.version, 1, "both events in one rebuild");
        assert_eq!(snap.services.len(), 2);
        assert!(!readiness.is_ready(), "other kinds not synced yet");

        for kind in ResourceKind::ALL {
            tx.send(SourceEvent::NotServed(SourceId::Manifests, kind))
                .await
                .unwrap();
        }
        updates.changed().await.unwrap();
        assert!(readiness.is_ready());
        drop(tx);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_gateway_is_ready_only_once_its_ingress_kinds_are_synced() {
        let publisher = Publisher::new(
            &[SourceId::KubeApi],
            Inputs::Gateway,
            BuildOptions::default(),
            Duration::from_millis(50),
        );
        let readiness = publisher.readiness();
        let mut updates = publisher.subscribe();
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(publisher.run(rx));
        let synced = |kind| SourceEvent::NotServed(SourceId::KubeApi, kind);
        for kind in ResourceKind::ALL {
            tx.send(synced(kind)).await.unwrap();
        }
        updates.changed().await.unwrap();
        assert!(!readiness.is_ready(), "the agent's kinds are not enough");
        for kind in ResourceKind::INGRESS {
            tx.send(synced(kind)).await.unwrap();
        }
        updates.changed().await.unwrap();
        assert!(readiness.is_ready());
        drop(tx);
        task.await.unwrap();
    }
}
