//! Whether the sources have delivered a complete view: what the proxy waits for before it
//! accepts, what the proxier waits for before it prunes, and what `/readyz` answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgemesh_model::Snapshot;
use tokio::sync::watch;

/// Shared view of whether every expected (source, kind) pair has completed its first sync and
/// a Snapshot including them has been published.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU64);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.ready_version().is_some()
    }

    /// Version of the first Snapshot that included every source's complete view; consumers that
    /// apply Snapshots (the proxier) are caught up once they have applied this one.
    pub fn ready_version(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Acquire)).filter(|v| *v > 0)
    }

    /// Marks `version` as the first complete Snapshot (the publisher, before publishing it).
    pub(crate) fn mark(&self, version: u64) {
        self.0.store(version, Ordering::Release);
    }

    /// Whether `snapshot` includes every source's first complete list. The publisher marks
    /// readiness before it publishes that Snapshot, so a consumer asking on each new Snapshot
    /// never misses it.
    pub fn includes(&self, snapshot: &Snapshot) -> bool {
        self.ready_version()
            .is_some_and(|ready| snapshot.version >= ready)
    }

    /// Resolves once every source completed its first list (`updates` wakes it), or after
    /// `within`; false when it gave up waiting.
    pub async fn wait_first_complete(
        &self,
        mut updates: watch::Receiver<Arc<Snapshot>>,
        within: Duration,
    ) -> bool {
        let complete = async {
            while !self.is_ready() {
                if updates.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(within, complete).await.is_ok()
    }

    /// [`Self::wait_first_complete`] for the proxy's listeners, which hold connections until
    /// then: giving up is logged, and the proxy serves the services it knows.
    pub async fn first_sync(
        self: Arc<Self>,
        updates: watch::Receiver<Arc<Snapshot>>,
        within: Duration,
    ) {
        if !self.wait_first_complete(updates, within).await {
            tracing::warn!(
                wait = ?within,
                "the sources have not completed their first list in time; the proxy serves the services it knows"
            );
        }
    }

    /// Why the agent is not ready (`/readyz`), or `None`: ready once every source has delivered
    /// a complete view *and*, when rules are installed, the rules of that view are
    /// (`rules_synced`: the version of the last Snapshot whose rules are in place), so a ready
    /// agent intercepts every service it reported.
    pub fn not_ready(&self, rules_synced: Option<u64>) -> Option<&'static str> {
        let Some(version) = self.ready_version() else {
            return Some("waiting for the first complete sync of every source");
        };
        match rules_synced {
            Some(synced) if synced < version => Some("waiting for the first rule sync"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn readiness_includes_the_first_complete_snapshot_and_later_ones() {
        let readiness = Arc::new(Readiness::default());
        let at = |version| {
            let mut snapshot = Snapshot::empty();
            snapshot.version = version;
            snapshot
        };
        let (updates, rx) = watch::channel(Arc::new(at(1)));
        assert!(!readiness.includes(&at(1)));
        let gave_up = readiness.wait_first_complete(rx.clone(), Duration::from_secs(5));
        assert!(!gave_up.await, "nothing completed within the wait");
        let waiting = tokio::spawn({
            let readiness = Arc::clone(&readiness);
            async move {
                readiness
                    .wait_first_complete(rx, Duration::from_secs(5))
                    .await
            }
        });
        readiness.mark(2);
        updates.send_replace(Arc::new(at(2)));
        assert!(waiting.await.unwrap(), "woken by the complete Snapshot");
        assert!(!readiness.includes(&at(1)) && readiness.includes(&at(3)));
    }

    #[test]
    fn ready_needs_a_complete_view_and_its_rules_when_rules_are_installed() {
        let readiness = Readiness::default();
        let sources = Some("waiting for the first complete sync of every source");
        let rules = Some("waiting for the first rule sync");
        assert_eq!(readiness.not_ready(None), sources);
        assert_eq!(readiness.not_ready(Some(9)), sources);
        readiness.mark(3);
        let cases = [
            (None, None),
            (Some(0), rules),
            (Some(2), rules),
            (Some(3), None),
            (Some(4), None),
        ];
        for (rules_synced, want) in cases {
            assert_eq!(readiness.not_ready(rules_synced), want, "{rules_synced:?}");
        }
    }
}
