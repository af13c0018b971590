//! The manifests-directory source: multi-document YAML (or JSON) files with Services,
//! EndpointSlices, Endpoints, Nodes and DestinationRules (and, for the gateway, Gateways,
//! VirtualServices and TLS Secrets), watched live with inotify.
//!
//! This is the offline/standalone mode: a site with no apiserver at all, the playground and the
//! tests. Each change re-reads only the files whose inode, size or mtime changed, then reports the
//! union of all files as a relist, so several files may define objects and a removed file removes
//! its objects. A file that fails to parse keeps its last good content (an editor saving a typo
//! must not take services down) and is reported with its path and line. A file changed less than
//! a moment ago is read only once it has been quiet that long, so a rewrite in place (truncate,
//! then write) is never read half-written. Directories are entered once each, however many
//! symlinks lead to them (`ln -s . loop` must not make the walk explode), and rescans run off the
//! async threads, so DNS and the admin endpoint never wait for a slow directory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use edgemesh_model::{Resource, ResourceKind, ResourceRef, SourceId};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::documents::{self, Decoded};
use crate::Inputs;
use crate::publisher::SourceEvent;

/// A full rescan also runs on this period, in case inotify dropped events (queue overflow).
const RESCAN_INTERVAL: Duration = Duration::from_secs(10);
/// Editors write a file in several steps; wait this long after an event before reading.
const SETTLE: Duration = Duration::from_millis(30);
const MAX_DEPTH: usize = 8;
/// A file modified more recently than this is left for the next rescan (it may be mid-write).
const QUIET: Duration = Duration::from_millis(250);
/// An emptied file waits this many times [`QUIET`] (2 s) before it is read.
const EMPTIED_QUIET_FACTOR: u32 = 8;

/// Why the manifests source could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestsError {
    #[error("manifests directory {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot watch manifests directory {path}: {error}")]
    Watch { path: PathBuf, error: notify::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: SystemTime,
}

/// One file's objects as last read. Cloning a [`Resource`] shares its spec, so this costs a
/// pointer per object: the catalog holds the same specs (the relists hand them over).
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
    /// How long a changed file must have been left alone before it is read.
    quiet: Duration,
    /// Some changed file was left for later by the last rescan.
    deferred: bool,
    /// Paths already reported as skipped (symlink loops, special files), so each is logged once.
    reported: BTreeSet<PathBuf>,
    /// The kinds read; documents of other kinds are ignored like a Deployment.
    inputs: Inputs,
}

impl ManifestsDir {
    /// A directory whose changed files are read at once (tests); [`run`] waits for them to
    /// settle.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            files: BTreeMap::new(),
            quiet: Duration::ZERO,
            deferred: false,
            reported: BTreeSet::new(),
            inputs: Inputs::Agent,
        }
    }

    /// Reads the kinds of `inputs` (default: the agent's).
    pub fn reading(mut self, inputs: Inputs) -> Self {
        self.inputs = inputs;
        self
    }

    /// Reads a changed file only once it has not been modified for `quiet`.
    pub fn settling(mut self, quiet: Duration) -> Self {
        self.quiet = quiet;
        self
    }

    /// How long `path`, changed to `stamp`, must have been left alone before it is read. A file
    /// that had services and is now empty is most likely truncated by a writer that has not
    /// written yet (`echo >`, a plain save): it waits [`EMPTIED_QUIET_FACTOR`] times longer, so a
    /// writer paused by a busy machine does not drop its services either.
    fn quiet_for(&self, path: &Path, stamp: Stamp) -> Duration {
        let emptied = stamp.len == 0
            && self
                .files
                .get(path)
                .is_some_and(|f| !f.resources.is_empty());
        if emptied {
            self.quiet * EMPTIED_QUIET_FACTOR
        } else {
            self.quiet
        }
    }

    /// Whether the last rescan left a changed file for later.
    pub fn deferred(&self) -> bool {
        self.deferred
    }

    /// Re-reads changed files and forgets removed ones; returns whether anything changed.
    pub fn rescan(&mut self) -> Result<bool, ManifestsError> {
        let mut walk = Walk::default();
        walk.collect(&self.root, 0)
            .map_err(|error| ManifestsError::Io {
                path: self.root.clone(),
                error,
            })?;
        for (path, why) in walk.skipped {
            if self.reported.insert(path.clone()) {
                tracing::warn!(path = %path.display(), reason = %why, "manifests: skipped");
            }
        }
        let present = walk.files;
        let before = self.files.len();
        self.files
            .retain(|path, _| present.iter().any(|(p, _)| p == path));
        let mut changed = self.files.len() != before;
        self.deferred = false;
        let now = SystemTime::now();
        for (path, stamp) in present {
            if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            if now.duration_since(stamp.modified).unwrap_or_default() < self.quiet_for(&path, stamp)
            {
                self.deferred = true;
                continue;
            }
            changed = true;
            match read_file(&path, self.inputs) {
                Ok(mut resources) => {
                    if let Some(previous) = self.files.get(&path) {
                        share_unchanged(&previous.resources, &mut resources);
                    }
                    self.files.insert(path, FileState { stamp, resources });
                }
                Err(message) => {
                    tracing::error!(
                        path = %path.display(),
                        error = %message,
                        "manifests: cannot load the file; keeping its previous content"
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

    /// The union of all files, as one relist event per kind read.
    pub fn relist_events(&self) -> Vec<SourceEvent> {
        let mut by_kind: BTreeMap<ResourceKind, Vec<Resource>> =
            self.inputs.kinds().map(|k| (k, Vec::new())).collect();
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

/// Points each object of a re-read file that is unchanged from `previous` (same kind, key and
/// content) at the spec read before, which the relists already gave the catalog: the source
/// and the catalog then hold one spec between them, however often the file is rewritten, and
/// the catalog sees the same pointer (an upsert that changes nothing, found without comparing
/// the content).
fn share_unchanged(previous: &[Resource], read: &mut [Resource]) {
    if previous.is_empty() {
        return;
    }
    let before: HashMap<ResourceRef, &Resource> =
        previous.iter().map(|r| (r.reference(), r)).collect();
    for resource in read {
        if let Some(old) = before.get(&resource.reference())
            && **old == *resource
        {
            *resource = (*old).clone();
        }
    }
}

/// One walk of the directory tree: manifest files found, and what was skipped and why.
#[derive(Default)]
struct Walk {
    files: Vec<(PathBuf, Stamp)>,
    skipped: Vec<(PathBuf, &'static str)>,
    /// Directories entered, by device and inode: a symlink back to one is not followed again.
    entered: HashSet<(u64, u64)>,
}

impl Walk {
    /// Files with a manifest extension, skipping hidden files (editor swap files). Symlinks are
    /// followed (a ConfigMap volume is made of them), each directory once.
    fn collect(&mut self, dir: &Path, depth: usize) -> std::io::Result<()> {
        let meta = std::fs::metadata(dir)?;
        if !self.entered.insert((meta.dev(), meta.ino())) {
            self.skipped.push((
                dir.to_path_buf(),
                "a directory already read (a symlink loop)",
            ));
            return Ok(());
        }
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() && depth < MAX_DEPTH {
                if let Err(e) = self.collect(&path, depth + 1) {
                    tracing::debug!(path = %path.display(), error = %e, "manifests: directory not read");
                }
            } else if is_manifest(&path) {
                if meta.is_file() {
                    self.files.push((path, stamp_of(&meta)));
                } else if !meta.is_dir() {
                    self.skipped
                        .push((path, "not a regular file (a FIFO, socket or device)"));
                }
            }
        }
        Ok(())
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
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
fn read_file(path: &Path, inputs: Inputs) -> Result<Vec<Resource>, String> {
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
        let doc = doc.map_err(|e| match first_invalid_utf8(path) {
            Some(offset) => format!("not UTF-8 text: invalid byte at offset {offset}"),
            None => format!("YAML error: {e}"),
        })?;
        for item in documents::expand_list(doc) {
            match documents::decode(&item, inputs) {
                Decoded::Resource(r) => resources.push(r),
                Decoded::Ignored => {}
                Decoded::Invalid(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "manifests: skipping an invalid object");
                }
            }
        }
    }
    Ok(resources)
}

/// The offset of the first byte that is not UTF-8 (the YAML reader only says "IO error").
fn first_invalid_utf8(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut carried, mut offset) = (0usize, 0u64);
    loop {
        let n = file.read(&mut buf[carried..]).ok()?;
        let filled = carried + n;
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) if n == 0 => return None,
            Ok(_) => carried = 0,
            // A sequence cut by the chunk's end: keep its bytes for the next read.
            Err(e) if e.error_len().is_none() && n > 0 => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                carried = filled - valid;
                offset += valid as u64;
                continue;
            }
            Err(e) => return Some(offset + e.valid_up_to() as u64),
        }
        offset += filled as u64;
    }
}

/// Watches `root` for the kinds of `inputs` until `events` is closed.
pub async fn run(
    root: PathBuf,
    events: mpsc::Sender<SourceEvent>,
    inputs: Inputs,
) -> Result<(), ManifestsError> {
    let (wake_tx, mut wake) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |_event| {
        // A full channel already holds a wake-up: coalescing is what we want.
        let _ = wake_tx.try_send(());
    })
    .map_err(|error| ManifestsError::Watch {
        path: root.clone(),
        error,
    })?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .map_err(|error| ManifestsError::Watch {
            path: root.clone(),
            error,
        })?;
    let start = ManifestsDir::new(&root).settling(QUIET).reading(inputs);
    let (mut dir, first) = rescanned(start).await;
    first?;
    // The first view is complete: a file being written at start-up is waited for (readiness
    // must not come from a directory read without it).
    while dir.deferred() {
        tokio::time::sleep(QUIET).await;
        let (scanned, result) = rescanned(dir).await;
        dir = scanned;
        result?;
    }
    tracing::info!(path = %root.display(), files = dir.files.len(), "manifests directory loaded");
    loop {
        for event in dir.relist_events() {
            if events.send(event).await.is_err() {
                return Ok(());
            }
        }
        dir = wait_for_change(dir, &mut wake).await;
    }
}

/// Rescans on a blocking thread: a huge or looping directory must not hold an async worker.
async fn rescanned(mut dir: ManifestsDir) -> (ManifestsDir, Result<bool, ManifestsError>) {
    let (root, inputs) = (dir.root.clone(), dir.inputs);
    let scan = tokio::task::spawn_blocking(move || {
        let result = dir.rescan();
        (dir, result)
    });
    match scan.await {
        Ok(done) => done,
        // The scan panicked: start from nothing rather than stop watching.
        Err(e) => {
            tracing::error!(path = %root.display(), error = %e, "manifests: rescan failed");
            let fresh = ManifestsDir::new(&root).settling(QUIET).reading(inputs);
            (fresh, Ok(false))
        }
    }
}

/// Sleeps until a rescan finds a change (after an inotify wake-up, the periodic timer, or the
/// quiet period of a file that was changing).
async fn wait_for_change(mut dir: ManifestsDir, wake: &mut mpsc::Receiver<()>) -> ManifestsDir {
    loop {
        let next = if dir.deferred() {
            QUIET
        } else {
            RESCAN_INTERVAL
        };
        tokio::select! {
            _ = wake.recv() => tokio::time::sleep(SETTLE).await,
            _ = tokio::time::sleep(next) => {}
        }
        while wake.try_recv().is_ok() {}
        let (scanned, result) = rescanned(dir).await;
        dir = scanned;
        match result {
            Ok(true) => return dir,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "manifests: rescan failed; keeping the last good state")
            }
        }
    }
}

#[cfg(test)]
mod tests;
