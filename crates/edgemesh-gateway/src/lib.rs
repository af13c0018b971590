//! The ingress gateway: traffic from outside the cluster into the mesh, routed by Istio
//! `Gateway`s and `VirtualService`s.
//!
//! Read top to bottom: the Snapshot's [`Ingress`](edgemesh_model::ingress::Ingress) objects are
//! compiled ([`table`]) into a route table of listening ports (protocol, TLS) with their routes;
//! objects that cannot be compiled are reported by name and left out. [`listen`] keeps one
//! socket per (address, port) of the table open. A connection is terminated ([`tls`]) or peeked
//! for its SNI ([`sni`]), then served: HTTP requests route by host, path, headers… to a weighted
//! destination ([`http`]); TCP and passthrough TLS connections are copied whole ([`tcp`]).
//! Destinations are Services of the Snapshot, balanced and dialed (directly or through the
//! tunnel) with the agent's own balancer and dialer ([`backend`]). [`cli`] reads the gateway's
//! flags and config, [`settings`] starts it.
#![forbid(unsafe_code)]

pub mod backend;
pub mod cli;
pub mod debug;
mod exchange;
pub mod hosts;
pub mod http;
pub mod listen;
pub mod matcher;
pub mod metrics;
pub mod retry;
pub mod settings;
pub mod sni;
pub mod subset;
pub mod table;
pub mod tcp;
pub mod tls;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use edgemesh_model::Snapshot;
use tokio::sync::watch;

pub use backend::Backends;
pub use table::{Identity, Problem, RouteTable};

/// How often the listening addresses are read again (an interface may gain or lose one).
pub const ADDRESS_RECHECK: Duration = Duration::from_secs(5);

/// What every connection reads: the current table, the way to backends, the metrics.
#[derive(Debug)]
pub struct Shared {
    pub table: ArcSwap<RouteTable>,
    pub backends: Backends,
    pub metrics: metrics::Metrics,
    pub listeners: Mutex<listen::Listeners>,
}

impl Shared {
    pub fn new(backends: Backends, metrics: metrics::Metrics) -> Self {
        Shared {
            table: ArcSwap::from_pointee(RouteTable::default()),
            backends,
            metrics,
            listeners: Mutex::new(listen::Listeners::default()),
        }
    }
}

/// Recompiles the table on every new Snapshot and keeps the listeners in step with it and
/// with `addresses` (read again every [`ADDRESS_RECHECK`]). Runs until `updates` closes.
pub async fn run(
    shared: Arc<Shared>,
    identity: Identity,
    mut updates: watch::Receiver<Arc<Snapshot>>,
    addresses: impl Fn() -> Vec<IpAddr>,
) {
    let mut told: Vec<Problem> = Vec::new();
    let mut ips = addresses();
    loop {
        let snapshot = Arc::clone(&updates.borrow_and_update());
        let started = std::time::Instant::now();
        let table = RouteTable::compile(&snapshot, &identity);
        tracing::debug!(
            version = table.version,
            ports = table.ports.len(),
            problems = table.problems.len(),
            micros = started.elapsed().as_micros() as u64,
            "route table compiled"
        );
        log_changes(&table, &mut told);
        let ports: Vec<u16> = table.ports.keys().copied().collect();
        shared.table.store(Arc::new(table));
        reconcile(&shared, &ips, &ports);
        let mut recheck = tokio::time::interval(ADDRESS_RECHECK);
        recheck.tick().await;
        loop {
            tokio::select! {
                changed = updates.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                _ = recheck.tick() => {
                    let now = addresses();
                    if now != ips {
                        tracing::info!(addresses = ?now, "gateway listening addresses changed");
                        ips = now;
                        reconcile(&shared, &ips, &ports);
                    }
                }
            }
        }
    }
}

fn reconcile(shared: &Arc<Shared>, ips: &[IpAddr], ports: &[u16]) {
    let mut listeners = shared.listeners.lock().unwrap_or_else(|p| p.into_inner());
    listeners.reconcile(ips, ports, shared);
}

/// Logs each problem once, when it appears, and says when one is gone.
fn log_changes(table: &RouteTable, told: &mut Vec<Problem>) {
    let now: Vec<Problem> = table
        .problems
        .iter()
        .chain(&table.warnings)
        .cloned()
        .collect();
    for problem in now.iter().filter(|p| !told.contains(p)) {
        tracing::warn!(object = %problem.object, problem = %problem.message, "gateway route table");
    }
    for gone in told.iter().filter(|p| !now.contains(p)) {
        tracing::info!(object = %gone.object, problem = %gone.message, "gateway route table: problem resolved");
    }
    *told = now;
}
