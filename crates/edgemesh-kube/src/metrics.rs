//! What the published Snapshot holds, as `/metrics` shows it.

use std::fmt;
use std::sync::Arc;

use edgemesh_model::SnapshotCell;
use edgemesh_telemetry::{Kind, Readings, Readout, Registry};

/// Reads the current Snapshot at each scrape.
struct SnapshotMetrics(Arc<SnapshotCell>);

impl Readout for SnapshotMetrics {
    fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
        let snapshot = self.0.load();
        let gauges = [
            (
                "snapshot_version",
                "Version of the published Snapshot.",
                snapshot.version,
            ),
            (
                "services",
                "Services in the Snapshot.",
                snapshot.services.len() as u64,
            ),
            (
                "proxied_frontends",
                "ClusterIP:port:protocol frontends intercepted.",
                snapshot.frontend_count() as u64,
            ),
        ];
        out.table(Kind::Gauge, "edgemesh_", &gauges)
    }
}

/// Registers the Snapshot gauges of `cell`.
pub fn register(cell: Arc<SnapshotCell>, registry: &mut Registry) {
    Arc::new(SnapshotMetrics(cell)).register(registry);
}
