//! The agent's admin routes.

use std::sync::Arc;

use edgemesh_kube::Readiness;
use edgemesh_model::SnapshotCell;
use edgemesh_telemetry::{AdminServer, Reply};

pub fn routes(cell: Arc<SnapshotCell>, readiness: Arc<Readiness>) -> AdminServer {
    let snapshot_cell = Arc::clone(&cell);
    AdminServer::new()
        .route("/healthz", || Reply::text(200, "ok\n"))
        .route("/readyz", move || {
            if readiness.is_ready() {
                Reply::text(200, "ready\n")
            } else {
                Reply::text(
                    503,
                    "not ready: waiting for the first complete sync of every source\n",
                )
            }
        })
        .route("/debug/snapshot", move || {
            match serde_json::to_vec_pretty(&*snapshot_cell.load()) {
                Ok(body) => Reply::json(body),
                Err(e) => Reply::text(500, format!("cannot serialize the snapshot: {e}\n")),
            }
        })
        .route("/metrics", move || Reply::text(200, metrics(&cell)))
}

/// Prometheus text exposition of the control-plane gauges.
fn metrics(cell: &SnapshotCell) -> String {
    let snapshot = cell.load();
    format!(
        "# HELP edgemesh_snapshot_version Version of the published Snapshot.\n\
         # TYPE edgemesh_snapshot_version gauge\n\
         edgemesh_snapshot_version {}\n\
         # HELP edgemesh_services Services in the Snapshot.\n\
         # TYPE edgemesh_services gauge\n\
         edgemesh_services {}\n\
         # HELP edgemesh_proxied_frontends ClusterIP:port:protocol frontends intercepted.\n\
         # TYPE edgemesh_proxied_frontends gauge\n\
         edgemesh_proxied_frontends {}\n",
        snapshot.version,
        snapshot.services.len(),
        snapshot.frontend_count()
    )
}
