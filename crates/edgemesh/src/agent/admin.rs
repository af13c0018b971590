//! The agent's admin routes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use edgemesh_dns::DnsMetrics;
use edgemesh_kube::Readiness;
use edgemesh_model::SnapshotCell;
use edgemesh_telemetry::{AdminServer, Reply};

use super::datapath::DataPath;
use super::liveness::Liveness;
use super::proxier::ProxierStats;
use super::tunnel::PeersReport;

pub fn routes(
    cell: Arc<SnapshotCell>,
    readiness: Arc<Readiness>,
    datapath: Option<DataPath>,
    dns: Option<Arc<DnsMetrics>>,
    peers: Option<PeersReport>,
    liveness: Liveness,
) -> AdminServer {
    let snapshot_cell = Arc::clone(&cell);
    let proxier = datapath.as_ref().map(|d| Arc::clone(&d.proxier));
    AdminServer::new()
        .route("/debug/peers", move || match &peers {
            Some(report) => Reply::json(
                report
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            ),
            None => Reply::text(404, "the tunnel is off (modules.edgeTunnel.enable)\n"),
        })
        .route("/healthz", move || {
            let (status, body) = liveness.health();
            Reply::text(status, body)
        })
        .route("/readyz", move || {
            match readiness_problem(&readiness, proxier.as_deref()) {
                None => Reply::text(200, "ready\n"),
                Some(problem) => Reply::text(503, format!("not ready: {problem}\n")),
            }
        })
        .route("/debug/snapshot", move || {
            match serde_json::to_vec_pretty(&*snapshot_cell.load()) {
                Ok(body) => Reply::json(body),
                Err(e) => Reply::text(500, format!("cannot serialize the snapshot: {e}\n")),
            }
        })
        .route("/metrics", move || {
            let mut text = snapshot_metrics(&cell);
            if let Some(datapath) = &datapath {
                text.push_str(&datapath_metrics(datapath));
            }
            if let Some(dns) = &dns {
                text.push_str(&dns_metrics(dns));
            }
            Reply::text(200, text)
        })
}

/// Ready once every source has delivered a complete view *and*, when the proxy runs, the rules
/// of that view are installed: a ready agent intercepts every service it reported.
fn readiness_problem(
    readiness: &Readiness,
    proxier: Option<&ProxierStats>,
) -> Option<&'static str> {
    let Some(version) = readiness.ready_version() else {
        return Some("waiting for the first complete sync of every source");
    };
    match proxier {
        Some(p) if p.last_synced_version.load(Ordering::Acquire) < version => {
            Some("waiting for the first rule sync")
        }
        _ => None,
    }
}

/// One metric: name, help text, Prometheus type, value.
type Metric<'a> = (&'a str, &'a str, &'a str, u64);

/// Prometheus text exposition of `metrics`.
fn render(metrics: &[Metric<'_>]) -> String {
    metrics
        .iter()
        .map(|(name, help, kind, value)| {
            format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n")
        })
        .collect()
}

fn snapshot_metrics(cell: &SnapshotCell) -> String {
    let snapshot = cell.load();
    render(&[
        (
            "edgemesh_snapshot_version",
            "Version of the published Snapshot.",
            "gauge",
            snapshot.version,
        ),
        (
            "edgemesh_services",
            "Services in the Snapshot.",
            "gauge",
            snapshot.services.len() as u64,
        ),
        (
            "edgemesh_proxied_frontends",
            "ClusterIP:port:protocol frontends intercepted.",
            "gauge",
            snapshot.frontend_count() as u64,
        ),
    ])
}

fn datapath_metrics(datapath: &DataPath) -> String {
    let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
    let p = &datapath.proxier;
    let m = datapath.proxy_metrics.snapshot();
    render(&[
        (
            "edgemesh_proxier_syncs_total",
            "Rule syncs applied.",
            "counter",
            load(&p.syncs),
        ),
        (
            "edgemesh_proxier_sync_errors_total",
            "Rule syncs that failed.",
            "counter",
            load(&p.sync_errors),
        ),
        (
            "edgemesh_proxier_order_repairs_total",
            "Times kube-proxy's jump was found ahead of ours and moved back.",
            "counter",
            load(&p.order_repairs),
        ),
        (
            "edgemesh_proxier_last_sync_microseconds",
            "Duration of the last rule sync.",
            "gauge",
            load(&p.last_sync_micros),
        ),
        (
            "edgemesh_proxier_fast_path_frontends",
            "Frontends the kernel DNATs itself (nftables fast path), not through the proxy.",
            "gauge",
            load(&p.last_fast_path),
        ),
        (
            "edgemesh_proxy_tcp_accepted_total",
            "TCP connections accepted.",
            "counter",
            m.accepted,
        ),
        (
            "edgemesh_proxy_tcp_no_route_total",
            "TCP connections to an unknown frontend.",
            "counter",
            m.no_route,
        ),
        (
            "edgemesh_proxy_tcp_no_endpoint_total",
            "TCP connections reset: no endpoint.",
            "counter",
            m.no_endpoint,
        ),
        (
            "edgemesh_proxy_dial_failures_total",
            "Upstream connects that failed.",
            "counter",
            m.dial_failures,
        ),
        (
            "edgemesh_proxy_dial_retries_total",
            "Connections retried on another endpoint.",
            "counter",
            m.retries,
        ),
        (
            "edgemesh_proxy_active_connections",
            "TCP connections being relayed.",
            "gauge",
            m.active,
        ),
        (
            "edgemesh_proxy_bytes_to_upstream_total",
            "Bytes from clients to backends.",
            "counter",
            m.bytes_client_to_upstream,
        ),
        (
            "edgemesh_proxy_bytes_to_client_total",
            "Bytes from backends to clients.",
            "counter",
            m.bytes_upstream_to_client,
        ),
        (
            "edgemesh_proxy_udp_sessions_total",
            "UDP sessions created.",
            "counter",
            m.udp_sessions_created,
        ),
        (
            "edgemesh_proxy_udp_sessions_active",
            "UDP sessions alive.",
            "gauge",
            m.udp_sessions_active,
        ),
    ])
}

fn dns_metrics(dns: &DnsMetrics) -> String {
    let m = dns.snapshot();
    render(&[
        (
            "edgemesh_dns_queries_total",
            "DNS queries received.",
            "counter",
            m.queries,
        ),
        (
            "edgemesh_dns_cluster_answers_total",
            "Queries answered from the Snapshot.",
            "counter",
            m.cluster_answers,
        ),
        (
            "edgemesh_dns_forwarded_total",
            "Queries forwarded upstream.",
            "counter",
            m.forwarded,
        ),
        (
            "edgemesh_dns_cache_hits_total",
            "Queries answered from a fresh cache entry.",
            "counter",
            m.cache_hits,
        ),
        (
            "edgemesh_dns_stale_answers_total",
            "Queries answered from an expired entry because no upstream answered.",
            "counter",
            m.stale_answers,
        ),
        (
            "edgemesh_dns_upstream_failures_total",
            "Upstream exchanges that failed.",
            "counter",
            m.upstream_failures,
        ),
    ])
}
