//! The agent's admin routes, which the gateway serves too (it adds `/debug/routes`; `/metrics`
//! is added by the caller from the one registry).

use std::sync::Arc;

use edgemesh_kube::Readiness;
use edgemesh_model::SnapshotCell;
use edgemesh_netfilter::ProxierStats;
use edgemesh_telemetry::{AdminServer, Liveness, Reply};
use edgemesh_tunnel::PeersView;

pub fn routes(
    cell: Arc<SnapshotCell>,
    readiness: Arc<Readiness>,
    proxier: Option<Arc<ProxierStats>>,
    peers: Option<Arc<PeersView>>,
    liveness: Liveness,
) -> AdminServer {
    AdminServer::new()
        .route("/debug/peers", move || match &peers {
            Some(view) => Reply::json(view.body()),
            None => Reply::text(404, "the tunnel is off (modules.edgeTunnel.enable)\n"),
        })
        .liveness(liveness)
        .route("/readyz", move || {
            match readiness.not_ready(proxier.as_ref().map(|p| p.synced_version())) {
                None => Reply::text(200, "ready\n"),
                Some(problem) => Reply::text(503, format!("not ready: {problem}\n")),
            }
        })
        .route("/debug/snapshot", move || {
            match serde_json::to_vec_pretty(&*cell.load()) {
                Ok(body) => Reply::json(body),
                Err(e) => Reply::text(500, format!("cannot serialize the snapshot: {e}\n")),
            }
        })
}
