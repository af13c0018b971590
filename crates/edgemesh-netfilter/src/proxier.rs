//! The proxier loop: Snapshot changes → desired rules → one atomic apply, plus periodic repair
//! of the chain order against kube-proxy (iptables mode).
//!
//! Rules are replaced only from a complete Snapshot (the caller's `complete` predicate): until
//! every required source finished its first list, the rules a predecessor left stay untouched.
//! So a restarted agent's first transaction is the complete rule set (no gap), and an agent that
//! cannot list Services (wrong credentials) never replaces working rules with empty ones.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgemesh_model::Snapshot;
use edgemesh_telemetry::{Kind, Latency, Readings, Readout};
use tokio::sync::{Mutex, watch};

use crate::backend::RuleBackend;
use crate::rules::{RuleOptions, RuleSet, desired_rules, patch_rules};

/// How often the iptables jump order is checked between syncs (kube-proxy re-inserts its jump
/// whenever it restarts).
const REPAIR_INTERVAL: Duration = Duration::from_secs(10);
/// Snapshot changes closer together than this are applied as one sync.
const SYNC_DEBOUNCE: Duration = Duration::from_millis(20);
/// A failed apply is tried again after this long when no newer Snapshot came meanwhile (the
/// previous rules stay in place until then).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// What the proxier did; read by `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct ProxierStats {
    pub syncs: AtomicU64,
    /// Of those, the ones that sent only the changed elements (nftables).
    pub incremental_syncs: AtomicU64,
    pub sync_errors: AtomicU64,
    pub order_repairs: AtomicU64,
    /// Kept under its old name for dashboards that read it; `sync_duration` is the one to use.
    pub last_sync_micros: AtomicU64,
    /// Duration of every successful apply.
    pub sync_duration: Latency,
    pub last_frontends: AtomicU64,
    /// Of those, DNATed by the kernel itself (fast path).
    pub last_fast_path: AtomicU64,
    /// Version of the last Snapshot whose rules are installed (0: none yet).
    pub last_synced_version: AtomicU64,
}

impl ProxierStats {
    /// Version of the last Snapshot whose rules are installed (0: none yet).
    pub fn synced_version(&self) -> u64 {
        self.last_synced_version.load(Ordering::Acquire)
    }
}

impl Readout for ProxierStats {
    fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let counters = [
            ("syncs", "Rule syncs applied.", load(&self.syncs)),
            (
                "incremental_syncs",
                "Rule syncs that sent only the changed set and map elements (nftables).",
                load(&self.incremental_syncs),
            ),
            (
                "sync_errors",
                "Rule syncs that failed.",
                load(&self.sync_errors),
            ),
            (
                "order_repairs",
                "Times kube-proxy's jump was found ahead of ours and moved back.",
                load(&self.order_repairs),
            ),
        ];
        out.table(Kind::Counter, "edgemesh_proxier_", &counters)?;
        let gauges = [
            (
                "last_sync_microseconds",
                "Duration of the last rule sync (deprecated: edgemesh_proxier_sync_duration_seconds).",
                load(&self.last_sync_micros),
            ),
            (
                "frontends",
                "Frontends intercepted by the rules of the last sync.",
                load(&self.last_frontends),
            ),
            (
                "fast_path_frontends",
                "Frontends the kernel DNATs itself (nftables fast path), not through the proxy.",
                load(&self.last_fast_path),
            ),
        ];
        out.table(Kind::Gauge, "edgemesh_proxier_", &gauges)?;
        out.histogram(
            "edgemesh_proxier_sync_duration_seconds",
            "Duration of each successful rule apply.",
            &self.sync_duration,
        )
    }
}

type SharedBackend = Arc<Mutex<Box<dyn RuleBackend>>>;

/// Keeps the kernel's rules equal to the latest complete Snapshot.
#[derive(Debug)]
pub struct Proxier {
    backend: SharedBackend,
    options: RuleOptions,
    /// The Snapshot whose rules the backend applied last (`None` after a failure).
    installed: Option<Arc<Snapshot>>,
    stats: Arc<ProxierStats>,
    timing: Timing,
}

/// The loop's intervals (shortened by tests).
#[derive(Clone, Copy, Debug)]
struct Timing {
    debounce: Duration,
    repair: Duration,
    retry: Duration,
}

impl Proxier {
    pub fn new(backend: Box<dyn RuleBackend>, options: RuleOptions) -> Self {
        Self {
            backend: Arc::new(Mutex::new(backend)),
            options,
            installed: None,
            stats: Arc::default(),
            timing: Timing {
                debounce: SYNC_DEBOUNCE,
                repair: REPAIR_INTERVAL,
                retry: RETRY_AFTER_FAILURE,
            },
        }
    }

    pub fn stats(&self) -> Arc<ProxierStats> {
        Arc::clone(&self.stats)
    }

    /// Applies every new complete Snapshot (`complete` tells which are) until `updates` closes;
    /// `synced` runs after each complete Snapshot was handled (the load balancer forgets the
    /// endpoints it no longer has).
    pub async fn run(
        mut self,
        mut updates: watch::Receiver<Arc<Snapshot>>,
        complete: impl Fn(&Snapshot) -> bool,
        mut synced: impl FnMut(&Snapshot),
    ) {
        let repair = tokio::spawn(repair_periodically(
            Arc::clone(&self.backend),
            Arc::clone(&self.stats),
            self.timing.repair,
        ));
        let mut waiting_logged = false;
        let mut failed = false;
        loop {
            let snapshot = Arc::clone(&updates.borrow_and_update());
            if complete(&snapshot) {
                if waiting_logged {
                    tracing::info!(
                        version = snapshot.version,
                        "every source completed its first list; replacing the rules in place"
                    );
                    waiting_logged = false;
                }
                failed = !self.sync(Arc::clone(&snapshot)).await;
                synced(&snapshot);
            } else if !waiting_logged && self.stats.syncs.load(Ordering::Relaxed) == 0 {
                tracing::info!(
                    "rules are left as they are (a predecessor's stay in place) until every source completed its first list"
                );
                waiting_logged = true;
            }
            if !self.next_change(&mut updates, failed).await {
                break;
            }
        }
        repair.abort();
    }

    /// Waits for the next Snapshot change (or the retry of a failed sync), then for the
    /// debounce; false when `updates` closed.
    async fn next_change(
        &self,
        updates: &mut watch::Receiver<Arc<Snapshot>>,
        failed: bool,
    ) -> bool {
        let retry = async {
            match failed {
                true => tokio::time::sleep(self.timing.retry).await,
                false => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = updates.changed() => if changed.is_err() { return false },
            () = retry => {}
        }
        tokio::time::sleep(self.timing.debounce).await;
        true
    }

    /// One apply of `snapshot`'s rules; false when it failed (the previous rules stay). The rules
    /// are built on the blocking thread too: at 100,000 services that takes tens of milliseconds.
    async fn sync(&mut self, snapshot: Arc<Snapshot>) -> bool {
        let backend = Arc::clone(&self.backend);
        let options = self.options.clone();
        let building = Arc::clone(&snapshot);
        let before = self.installed.take();
        let applied = tokio::task::spawn_blocking(move || {
            let mut backend = backend.blocking_lock();
            let rules = rules_for(&**backend, before.as_deref(), &building, &options);
            backend.apply(rules)
        })
        .await;
        if matches!(applied, Ok(Ok(_))) {
            self.installed = Some(Arc::clone(&snapshot));
        }
        let stats = &self.stats;
        match applied {
            Ok(Ok(result)) => {
                stats.syncs.fetch_add(1, Ordering::Relaxed);
                if result.incremental {
                    stats.incremental_syncs.fetch_add(1, Ordering::Relaxed);
                }
                stats
                    .last_synced_version
                    .store(snapshot.version, Ordering::Release);
                let micros = u64::try_from(result.duration.as_micros()).unwrap_or(u64::MAX);
                stats.last_sync_micros.store(micros, Ordering::Relaxed);
                stats.sync_duration.observe(result.duration);
                stats
                    .last_frontends
                    .store(result.frontends as u64, Ordering::Relaxed);
                stats
                    .last_fast_path
                    .store(result.fast_path as u64, Ordering::Relaxed);
                if result.order_repaired {
                    order_repaired(stats);
                }
                tracing::debug!(
                    version = snapshot.version,
                    frontends = result.frontends,
                    backend = result.backend,
                    incremental = result.incremental,
                    bytes = result.bytes,
                    ms = result.duration.as_secs_f64() * 1e3,
                    "rules synced"
                );
                true
            }
            Ok(Err(error)) => {
                stats.sync_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    version = snapshot.version,
                    %error,
                    "rule sync failed (the previous rules stay in place; retrying)"
                );
                false
            }
            Err(error) => {
                tracing::error!(%error, "rule sync task failed");
                false
            }
        }
    }
}

/// The rules for `snapshot`: what the backend applied for `before`, patched for the services
/// `snapshot` rebuilt since then; computed whole when there is no such chain of versions.
fn rules_for(
    backend: &dyn RuleBackend,
    before: Option<&Snapshot>,
    snapshot: &Snapshot,
    options: &RuleOptions,
) -> RuleSet {
    if let (Some(before), Some(changes), Some(applied)) =
        (before, snapshot.changes.as_deref(), backend.applied())
        && changes.since == before.version
        && applied.options == *options
    {
        return patch_rules(applied.clone(), before, snapshot, changes);
    }
    desired_rules(snapshot, options)
}

fn order_repaired(stats: &ProxierStats) {
    stats.order_repairs.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("kube-proxy's jump preceded ours; moved edgemesh's chains first again");
}

async fn repair_periodically(backend: SharedBackend, stats: Arc<ProxierStats>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let backend = Arc::clone(&backend);
        match tokio::task::spawn_blocking(move || backend.blocking_lock().repair()).await {
            Ok(Ok(true)) => order_repaired(&stats),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "checking the chain order failed"),
            Err(error) => tracing::error!(%error, "chain order check task failed"),
        }
    }
}

#[cfg(test)]
#[path = "proxier_tests.rs"]
mod tests;
