//! The manifests-directory source: multi-document YAML (or JSON) files with Services,
//! EndpointSlices, Endpoints, Nodes and DestinationRules, watched live with inotify.
//!
//! This is the offline/standalone mode: a site with no apiserver at all, the playground and the
//! tests. Each change re-reads only the files whose inode, size or mtime changed, then reports the
//! union of all files as a relist, so several files may define objects and a removed file removes
//! its objects. A file that fails to parse keeps its last good content (an editor saving a typo
//! must not take services down) and is reported with its path and line.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use edgemesh_model::{Resource, ResourceKind, SourceId};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::documents::{self, Decoded};
use crate::publisher::SourceEvent;

/// A full rescan also runs on this period, in case inotify dropped events (queue overflow).
const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
/// Editors write a file in several steps; wait this long after an event before reading.
const SETTLE: Duration = Duration::from_millis(30);
const MAX_DEPTH: usize = 8;

/// Why the manifests source could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestsError {
    #[error("manifests directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch manifests directory {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: SystemTime,
}

#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    resources: Vec<Resource>,
}

/// What the directory currently holds, file by file.
#[derive(Debug)]
pub struct ManifestsDir {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
}

impl ManifestsDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            files: BTreeMap::new(),
        }
    }

    /// Re-reads changed files and forgets removed ones; returns whether anything changed.
    pub fn rescan(&mut self) -> Result<bool, ManifestsError> {
        let mut present = Vec::new();
        collect_files(&self.root, 0, &mut present).map_err(|source| ManifestsError::Io {
            path: self.root.clone(),
            source,
        })?;
        let before = self.files.len();
        self.files
            .retain(|path, _| present.iter().any(|(p, _)| p == path));
        let mut changed = self.files.len() != before;
        for (path, stamp) in present {
            if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            changed = true;
            match read_file(&path) {
                Ok(resources) => {
                    self.files.insert(path, FileState { stamp, resources });
                }
                Err(message) => {
                    tracing::error!(
                        "manifests: {}: {message}; keeping its previous content",
                        path.display()
                    );
                    // Remember the stamp so the same broken content is reported once.
                    let resources = self
                        .files
                        .remove(&path)
                        .map(|f| f.resources)
                        .unwrap_or_default();
                    self.files.insert(path, FileState { stamp, resources });
                }
            }
        }
        Ok(changed)
    }

    /// The union of all files, as one relist event per kind.
    pub fn relist_events(&self) -> Vec<SourceEvent> {
        let mut by_kind: BTreeMap<ResourceKind, Vec<Resource>> =
            ResourceKind::ALL.iter().map(|k| (*k, Vec::new())).collect();
        for resource in self.files.values().flat_map(|f| &f.resources) {
            by_kind
                .entry(resource.reference().kind)
                .or_default()
                .push(resource.clone());
        }
        by_kind
            .into_iter()
            .map(|(kind, items)| SourceEvent::Relist(SourceId::Manifests, kind, items))
            .collect()
    }
}

/// Files with a manifest extension, skipping hidden files (editor swap files) and directories.
fn collect_files(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, Stamp)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() && depth < MAX_DEPTH {
            collect_files(&path, depth + 1, out)?;
        } else if meta.is_file() && is_manifest(&path) {
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((
                path,
                Stamp {
                    inode: meta.ino(),
                    len: meta.len(),
                    modified,
                },
            ));
        }
    }
    Ok(())
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Largest manifest file read (a whole cluster's Services and EndpointSlices fit easily).
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The parser's default budget (1,024 documents, 250,000 nodes) rejects one honest file holding
/// a few thousand Services. Without aliases every node and document costs a few bytes of text,
/// so the caps grow with the file's size: large files load, while aliases ("billion laughs")
/// can still not expand a file far beyond its own size.
fn yaml_options(text_len: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = budget.max_documents.max(text_len / 4);
    budget.max_nodes = budget.max_nodes.max(text_len / 2);
    budget.max_events = budget.max_events.max(text_len * 2);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Parses one file; Err only for a file that cannot be read or parsed at all. Objects that parse
/// but are invalid are logged and skipped here, so the rest of the file still loads.
fn read_file(path: &Path) -> Result<Vec<Resource>, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "file is {size} bytes, more than the {MAX_FILE_BYTES} allowed"
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut reader = std::io::BufReader::new(file);
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    // Streamed one document at a time: holding every document of a 10,000-Service file as
    // untyped values at once cost ~100 MiB of peak memory that the allocator then kept.
    let docs =
        serde_saphyr::read_with_options::<_, serde_json::Value>(&mut reader, yaml_options(size));
    let mut resources = Vec::new();
    for doc in docs {
        // Any error rejects the whole file, so it keeps its last good content.
        let doc = doc.map_err(|e| format!("YAML error: {e}"))?;
        for item in documents::expand_list(doc) {
            match documents::decode(&item) {
                Decoded::Resource(r) => resources.push(r),
                Decoded::Ignored => {}
                Decoded::Invalid(e) => {
                    tracing::warn!("manifests: {}: skipping {e}", path.display());
                }
            }
        }
    }
    Ok(resources)
}

/// Watches `root` until `events` is closed.
pub async fn run(root: PathBuf, events: mpsc::Sender<SourceEvent>) -> Result<(), ManifestsError> {
    let (wake_tx, mut wake) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |_event| {
        // A full channel already holds a wake-up: coalescing is what we want.
        let _ = wake_tx.try_send(());
    })
    .map_err(|source| ManifestsError::Watch {
        path: root.clone(),
        source,
    })?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|source| ManifestsError::Watch {
            path: root.clone(),
            source,
        })?;
    let mut dir = ManifestsDir::new(&root);
    dir.rescan()?;
    tracing::info!(path = %root.display(), files = dir.files.len(), "manifests directory loaded");
    loop {
        for event in dir.relist_events() {
            if events.send(event).await.is_err() {
                return Ok(());
            }
        }
        wait_for_change(&mut dir, &mut wake).await;
    }
}

/// Sleeps until a rescan finds a change (after an inotify wake-up or the periodic timer).
async fn wait_for_change(dir: &mut ManifestsDir, wake: &mut mpsc::Receiver<()>) {
    loop {
        tokio::select! {
            _ = wake.recv() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(RESCAN_INTERVAL) => {}
        }
        while wake.try_recv().is_ok() {}
        match dir.rescan() {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => tracing::warn!("{e}; keeping the last good state"),
        }
    }
}

#[cfg(test)]
mod tests;
