//! Shared by the ingress source tests: a Publisher fed by one source, and waiting on it.
#![allow(dead_code)] // each test binary uses part of it

use std::sync::Arc;
use std::time::Duration;

use edgemesh_kube::{Inputs, Publisher, Readiness, SourceEvent};
use edgemesh_model::{BuildOptions, ObjectKey, Snapshot, SnapshotCell, SourceId};
use tokio::sync::mpsc;

/// Long enough for a loaded machine; a working source takes milliseconds.
pub const WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Published {
    pub cell: Arc<SnapshotCell>,
    pub readiness: Arc<Readiness>,
    pub events: mpsc::Sender<SourceEvent>,
}

/// A running Publisher for `source` reading `inputs`.
pub fn publisher(source: SourceId, inputs: Inputs) -> Published {
    let publisher = Publisher::new(
        &[source],
        inputs,
        BuildOptions::default(),
        Duration::from_millis(10),
    );
    let (events, rx) = mpsc::channel(256);
    let published = Published {
        cell: publisher.cell(),
        readiness: publisher.readiness(),
        events,
    };
    tokio::spawn(publisher.run(rx));
    published
}

impl Published {
    /// The first ready Snapshot for which `check` holds; panics after [`WITHIN`].
    pub async fn wait(&self, what: &str, check: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let snapshot = self.cell.load();
            if self.readiness.includes(&snapshot) && check(&snapshot) {
                return snapshot;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {WITHIN:?}; last snapshot: {:?}",
                snapshot.ingress
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(namespace, name)
}

/// The keys of one ingress map, as `ns/name` text.
pub fn names<V>(map: &std::collections::BTreeMap<ObjectKey, V>) -> Vec<String> {
    map.keys().map(ToString::to_string).collect()
}
