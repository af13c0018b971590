//! The agent's admin routes.

use std::sync::Arc;

use edgemesh_kube::Readiness;
use edgemesh_model::SnapshotCell;
use edgemesh_telemetry::{AdminServer, Reply};

use super::datapath::DataPath;

pub fn routes(
    cell: Arc<SnapshotCell>,
    readiness: Arc<Readiness>,
    datapath: Option<DataPath>,
) -> AdminServer {
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
        .route("/metrics", move || {
            let mut text = metrics(&cell);
            if let Some(datapath) = &datapath {
                text.push_str(&datapath_metrics(datapath));
            }
            Reply::text(200, text)
        })
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

/// Prometheus text of the proxy and proxier counters.
fn datapath_metrics(datapath: &DataPath) -> String {
    use std::fmt::Write;
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    let p = &datapath.proxier;
    let m = datapath.proxy_metrics.snapshot();
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        );
    };
    counter(
        "edgemesh_proxier_syncs_total",
        "Rule syncs applied.",
        load(&p.syncs),
    );
    counter(
        "edgemesh_proxier_sync_errors_total",
        "Rule syncs that failed.",
        load(&p.sync_errors),
    );
    counter(
        "edgemesh_proxier_order_repairs_total",
        "Times kube-proxy's jump was found ahead of ours and moved back.",
        load(&p.order_repairs),
    );
    counter(
        "edgemesh_proxy_tcp_accepted_total",
        "TCP connections accepted.",
        m.accepted,
    );
    counter(
        "edgemesh_proxy_tcp_no_route_total",
        "TCP connections to an unknown frontend.",
        m.no_route,
    );
    counter(
        "edgemesh_proxy_tcp_no_endpoint_total",
        "TCP connections reset: no endpoint.",
        m.no_endpoint,
    );
    counter(
        "edgemesh_proxy_dial_failures_total",
        "Upstream connects that failed.",
        m.dial_failures,
    );
    counter(
        "edgemesh_proxy_dial_retries_total",
        "Connections retried on another endpoint.",
        m.retries,
    );
    counter(
        "edgemesh_proxy_bytes_to_upstream_total",
        "Bytes from clients to backends.",
        m.bytes_client_to_upstream,
    );
    counter(
        "edgemesh_proxy_bytes_to_client_total",
        "Bytes from backends to clients.",
        m.bytes_upstream_to_client,
    );
    counter(
        "edgemesh_proxy_udp_sessions_total",
        "UDP sessions created.",
        m.udp_sessions_created,
    );
    out
}
