//! The proxier loop against [`FakeBackend`]: when it applies, how often, and what it counts.

use std::sync::Mutex as StdMutex;

use super::*;
use crate::FakeBackend;
use crate::backend::{BackendKind, SyncStats};
use crate::error::Result;
use crate::fixtures::sample_snapshot;
use crate::rules::RuleSet;

/// A fake the test keeps a handle on while the proxier owns it.
#[derive(Clone, Debug, Default)]
struct Shared(Arc<StdMutex<FakeBackend>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut FakeBackend) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }
}

impl RuleBackend for Shared {
    fn name(&self) -> &'static str {
        "shared fake"
    }
    fn kind(&self) -> BackendKind {
        self.with(|f| f.kind())
    }
    fn apply(&mut self, rules: RuleSet) -> Result<SyncStats> {
        self.with(|f| f.apply(rules))
    }
    fn cleanup(&mut self) -> Result<()> {
        self.with(|f| f.cleanup())
    }
    fn repair(&mut self) -> Result<bool> {
        self.with(|f| f.repair())
    }
}

fn snapshot(version: u64) -> Arc<Snapshot> {
    let mut snapshot = sample_snapshot();
    snapshot.version = version;
    Arc::new(snapshot)
}

/// A running proxier whose Snapshots are complete from version `ready` on.
struct Running {
    fake: Shared,
    stats: Arc<ProxierStats>,
    updates: watch::Sender<Arc<Snapshot>>,
}

fn start(fake: FakeBackend, ready: u64) -> Running {
    let fake = Shared(Arc::new(StdMutex::new(fake)));
    let mut proxier = Proxier::new(Box::new(fake.clone()), RuleOptions::default());
    // A debounce wide enough that a burst sent from a loaded test thread lands inside it.
    proxier.timing = Timing {
        debounce: Duration::from_millis(100),
        repair: Duration::from_millis(30),
        retry: Duration::from_millis(50),
    };
    let stats = proxier.stats();
    let (updates, rx) = watch::channel(snapshot(1));
    tokio::spawn(proxier.run(rx, move |s| s.version >= ready, |_| {}));
    Running {
        fake,
        stats,
        updates,
    }
}

/// Polls `check` every 10 ms for at most 2 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn count(v: &AtomicU64) -> u64 {
    v.load(Ordering::Relaxed)
}

#[tokio::test]
async fn nothing_is_applied_before_the_first_complete_snapshot() {
    let run = start(FakeBackend::default(), 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        run.fake.with(|f| f.applies),
        0,
        "a predecessor's rules stay"
    );
    run.updates.send_replace(snapshot(2));
    // The stats are stored after the apply returned: wait for them, then look at the fake.
    eventually("the complete snapshot applied", || {
        run.stats.synced_version() == 2
    })
    .await;
    let want = desired_rules(&snapshot(2), &RuleOptions::default());
    assert_eq!(run.fake.with(|f| f.current.clone()), Some(want));
    assert_eq!(run.fake.with(|f| f.applies), 1);
}

#[tokio::test]
async fn a_burst_of_changes_is_one_apply() {
    let run = start(FakeBackend::default(), 1);
    eventually("the first apply", || run.stats.synced_version() == 1).await;
    for version in 2..=6 {
        run.updates.send_replace(snapshot(version));
    }
    eventually("the burst applied", || run.stats.synced_version() == 6).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        run.fake.with(|f| f.applies),
        2,
        "one apply for five changes"
    );
    assert_eq!(count(&run.stats.syncs), 2);
}

#[tokio::test]
async fn a_failed_apply_is_counted_and_retried() {
    let fake = FakeBackend {
        fail_next_apply: true,
        ..FakeBackend::default()
    };
    let run = start(fake, 1);
    eventually("the failure counted", || count(&run.stats.sync_errors) == 1).await;
    // No newer Snapshot comes: the retry alone installs the rules.
    eventually("the retry applied", || run.stats.synced_version() == 1).await;
    assert_eq!(run.fake.with(|f| f.applies), 1);
    assert_eq!(count(&run.stats.sync_errors), 1);
}

#[tokio::test]
async fn a_displaced_jump_is_repaired_between_syncs() {
    let run = start(FakeBackend::default(), 1);
    eventually("the first apply", || run.stats.synced_version() == 1).await;
    assert_eq!(count(&run.stats.order_repairs), 0);
    run.fake.with(|f| f.displaced = true);
    eventually("the periodic repair", || {
        count(&run.stats.order_repairs) == 1
    })
    .await;
    assert!(!run.fake.with(|f| f.displaced), "repair() was called");
    assert_eq!(run.fake.with(|f| f.applies), 1, "repaired without a sync");
}
