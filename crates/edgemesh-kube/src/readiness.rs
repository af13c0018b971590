//! Whether the sources have delivered a complete view: what the proxy waits for before it
//! accepts, what the proxier waits for before it prunes, and what `/readyz` answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use edgemesh_model::Snapshot;
use edgemesh_telemetry::Verdict;
use tokio::sync::watch;

/// Shared view of whether every expected (source, kind) pair has completed its first sync and
/// a Snapshot including them has been published.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Version of the first complete Snapshot (0: not yet).
    version: AtomicU64,
    /// What the sources still owe, in words, until then.
    pending: Mutex<Vec<String>>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.ready_version().is_some()
    }

    /// Version of the first Snapshot that included every source's complete view; consumers that
    /// apply Snapshots (the proxier) are caught up once they have applied this one.
    pub fn ready_version(&self) -> Option<u64> {
        Some(self.version.load(Ordering::Acquire)).filter(|v| *v > 0)
    }

    /// Marks `version` as the first complete Snapshot (the publisher, before publishing it).
    pub(crate) fn mark(&self, version: u64) {
        self.version.store(version, Ordering::Release);
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

    /// Records the (source, kind) pairs whose first complete list the sources still owe (the
    /// publisher, at each rebuild until ready), for `/readyz` to name them.
    pub(crate) fn set_pending(&self, pending: Vec<String>) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = pending;
    }

    /// `/readyz`'s "sources" component: ready once every source has delivered a complete view.
    pub fn sources_verdict(&self) -> Verdict {
        match self.ready_version() {
            Some(version) => Ok(format!(
                "every source has listed what it serves (complete from Snapshot {version})"
            )),
            None => {
                let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                Err(match pending.is_empty() {
                    true => "waiting for the first complete list of every source".to_owned(),
                    false => format!(
                        "waiting for the first complete list of {}",
                        pending.join(", ")
                    ),
                })
            }
        }
    }

    /// `/readyz`'s "rules" component (when rules are installed): ready once the rules of the
    /// first complete view are in place (`installed`: the version of the last Snapshot whose
    /// rules are), so a ready agent intercepts every service it reported.
    pub fn rules_verdict(&self, installed: u64) -> Verdict {
        match self.ready_version() {
            None => Err("waiting for the sources' first complete view".to_owned()),
            Some(version) if installed < version => Err(format!(
                "waiting for the first rule sync (Snapshot {version} is complete, the rules installed are of {installed})"
            )),
            Some(_) => Ok(format!("the rules of Snapshot {installed} are installed")),
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
    fn ready_needs_a_complete_view_and_its_rules_and_says_what_it_waits_for() {
        let readiness = Readiness::default();
        assert_eq!(
            readiness.sources_verdict(),
            Err("waiting for the first complete list of every source".into())
        );
        readiness.set_pending(vec![
            "kube-api Service".into(),
            "kube-api EndpointSlice".into(),
        ]);
        assert_eq!(
            readiness.sources_verdict(),
            Err(
                "waiting for the first complete list of kube-api Service, kube-api EndpointSlice"
                    .into()
            )
        );
        assert!(
            readiness.rules_verdict(9).is_err(),
            "no rules before the sources"
        );
        readiness.mark(3);
        assert!(readiness.sources_verdict().is_ok());
        for (installed, ready) in [(0, false), (2, false), (3, true), (4, true)] {
            assert_eq!(
                readiness.rules_verdict(installed).is_ok(),
                ready,
                "{installed}"
            );
        }
        assert_eq!(
            readiness.rules_verdict(2),
            Err("waiting for the first rule sync (Snapshot 3 is complete, the rules installed are of 2)".into())
        );
    }
}
