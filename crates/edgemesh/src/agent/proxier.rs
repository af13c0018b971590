//! The proxier loop: Snapshot changes → desired rules → one atomic apply, plus periodic repair
//! of the chain order against kube-proxy (iptables mode).
//!
//! Rules are replaced only from a complete Snapshot: until every required source finished its
//! first list, the rules a predecessor left stay untouched. So a restarted agent's first
//! transaction is the complete rule set (no gap), and an agent that cannot list Services (wrong
//! credentials) never replaces working rules with empty ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgemesh_kube::Readiness;
use edgemesh_lb::LoadBalancer;
use edgemesh_model::Snapshot;
use edgemesh_netfilter::{RuleBackend, RuleOptions, desired_rules};
use tokio::sync::{Mutex, watch};

/// How often the iptables jump order is checked between syncs (kube-proxy re-inserts its jump
/// whenever it restarts).
const REPAIR_INTERVAL: Duration = Duration::from_secs(10);
/// Snapshot changes closer together than this are applied as one sync.
const SYNC_DEBOUNCE: Duration = Duration::from_millis(20);

/// Counters the admin endpoint exposes.
#[derive(Debug, Default)]
pub struct ProxierStats {
    pub syncs: AtomicU64,
    pub sync_errors: AtomicU64,
    pub order_repairs: AtomicU64,
    pub last_sync_micros: AtomicU64,
    pub last_frontends: AtomicU64,
    /// Of those, DNATed by the kernel itself (fast path).
    pub last_fast_path: AtomicU64,
    /// Version of the last Snapshot whose rules are installed (0: none yet).
    pub last_synced_version: AtomicU64,
}

type SharedBackend = Arc<Mutex<Box<dyn RuleBackend>>>;

/// Applies every new complete Snapshot until the channel closes.
pub async fn run(
    backend: Box<dyn RuleBackend>,
    options: RuleOptions,
    mut updates: watch::Receiver<Arc<Snapshot>>,
    readiness: Arc<Readiness>,
    balancer: Arc<LoadBalancer>,
    stats: Arc<ProxierStats>,
) {
    let backend: SharedBackend = Arc::new(Mutex::new(backend));
    tokio::spawn(repair_periodically(
        Arc::clone(&backend),
        Arc::clone(&stats),
    ));
    let mut waiting_logged = false;
    loop {
        let snapshot = Arc::clone(&updates.borrow_and_update());
        if is_complete(&snapshot, &readiness) {
            if waiting_logged {
                tracing::info!(
                    version = snapshot.version,
                    "every source completed its first list; replacing the rules in place"
                );
                waiting_logged = false;
            }
            sync(&backend, &snapshot, &options, &stats).await;
            balancer.prune(&snapshot);
        } else if !waiting_logged && stats.syncs.load(Ordering::Relaxed) == 0 {
            tracing::info!(
                "rules are left as they are (a predecessor's stay in place) until every source completed its first list"
            );
            waiting_logged = true;
        }
        if updates.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(SYNC_DEBOUNCE).await;
    }
}

/// Whether `snapshot` includes every source's first complete list. The publisher marks readiness
/// before it publishes that Snapshot, so this never misses it.
fn is_complete(snapshot: &Snapshot, readiness: &Readiness) -> bool {
    readiness
        .ready_version()
        .is_some_and(|ready| snapshot.version >= ready)
}

async fn sync(
    backend: &SharedBackend,
    snapshot: &Snapshot,
    options: &RuleOptions,
    stats: &ProxierStats,
) {
    let rules = desired_rules(snapshot, options);
    let backend = Arc::clone(backend);
    let applied = tokio::task::spawn_blocking(move || backend.blocking_lock().apply(&rules)).await;
    match applied {
        Ok(Ok(result)) => {
            stats.syncs.fetch_add(1, Ordering::Relaxed);
            stats
                .last_synced_version
                .store(snapshot.version, Ordering::Release);
            stats
                .last_sync_micros
                .store(result.duration.as_micros() as u64, Ordering::Relaxed);
            stats
                .last_frontends
                .store(result.frontends as u64, Ordering::Relaxed);
            stats
                .last_fast_path
                .store(result.fast_path as u64, Ordering::Relaxed);
            if result.order_repaired {
                stats.order_repairs.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "kube-proxy's jump preceded ours; moved edgemesh's chains first again"
                );
            }
            tracing::debug!(
                version = snapshot.version,
                frontends = result.frontends,
                backend = result.backend,
                ms = result.duration.as_secs_f64() * 1e3,
                "rules synced"
            );
        }
        Ok(Err(e)) => {
            stats.sync_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                version = snapshot.version,
                "rule sync failed (the previous rules stay in place): {e}"
            );
        }
        Err(e) => tracing::error!("rule sync task failed: {e}"),
    }
}

async fn repair_periodically(backend: SharedBackend, stats: Arc<ProxierStats>) {
    let mut tick = tokio::time::interval(REPAIR_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let backend = Arc::clone(&backend);
        match tokio::task::spawn_blocking(move || backend.blocking_lock().repair()).await {
            Ok(Ok(true)) => {
                stats.order_repairs.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "kube-proxy's jump preceded ours; moved edgemesh's chains first again"
                );
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("checking the chain order failed: {e}"),
            Err(e) => tracing::error!("chain order check task failed: {e}"),
        }
    }
}
