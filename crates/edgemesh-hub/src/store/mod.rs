//! The response cache: in memory for fast answers, mirrored to disk in YurtHub's layout so it
//! survives restarts. Memory is loaded from disk at start; every change goes to memory at once
//! and to disk through one ordered writer.
//!
//! Crash safety of lists: before the objects of a list are written, the list's record is removed
//! from the metadata file; it is written back only after the last object. A crash in between
//! leaves valid objects but no claim that the list is complete, so offline that list is "not
//! cached" (an error), never a half-written list.

mod disk;
mod load;
mod resource;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

pub use disk::{is_safe_component, write_atomic, write_file_atomic};
use resource::ObjectHead;
pub use resource::{CachedObject, ListRecord, ListScope, Meta, ResourceCache};
pub use writer::WriterStats;

use edgemesh_selector::SelectorError;

use crate::error::HubError;
use crate::request::ResourceKey;

type Resources = HashMap<(String, ResourceKey), ResourceCache>;

/// An answer from the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Bytes),
    /// A complete list says the object does not exist.
    NotFound,
    /// The cache cannot tell: never stored for this agent.
    NotCached,
}

/// Counts for the admin endpoint.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CacheStats {
    pub agents: usize,
    pub resources: usize,
    pub objects: usize,
    pub discovery_documents: usize,
    pub files_written: u64,
    pub bytes_written: u64,
    pub write_errors: u64,
    /// Writes replaced by a newer one of the same file before they reached the disk.
    pub writes_coalesced: u64,
    /// Disk operations waiting.
    pub write_backlog: usize,
    /// Seconds since the cache last took an answer from upstream (a list, an object, a watch
    /// event, a deletion); `None` when nothing came since this hub started (what it serves was
    /// loaded from disk).
    pub seconds_since_update: Option<u64>,
}

/// The cache. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    resources: RwLock<Resources>,
    discovery: RwLock<HashMap<(String, String), Bytes>>,
    writer: writer::Writer,
    /// When the cache last took an answer from upstream.
    updated: std::sync::Mutex<Option<Instant>>,
}

impl Cache {
    /// Opens (creating) `root` and loads what a previous run left, cleaning up after a crash.
    pub fn open(root: &Path) -> Result<Self, HubError> {
        let cache_err = |error| HubError::Cache {
            path: root.to_path_buf(),
            error,
        };
        disk::create_private_dir(root).map_err(cache_err)?;
        let loaded = load::load(root).map_err(cache_err)?;
        let writer = writer::Writer::spawn().map_err(cache_err)?;
        Ok(Self {
            root: root.to_path_buf(),
            resources: RwLock::new(loaded.resources),
            discovery: RwLock::new(loaded.discovery),
            writer,
            updated: std::sync::Mutex::new(None),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Notes that upstream just answered (the age `/readyz` and `/debug/hub` report offline).
    fn touch(&self) {
        *self.updated.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn read(&self) -> RwLockReadGuard<'_, Resources> {
        self.resources.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Resources> {
        self.resources.write().unwrap_or_else(|e| e.into_inner())
    }

    fn resource_dir(&self, agent: &str, key: &ResourceKey) -> PathBuf {
        self.root.join(agent).join(key.dir_name())
    }

    fn queue_meta(&self, agent: &str, key: &ResourceKey, meta: &Meta) {
        if let Ok(bytes) = serde_json::to_vec(meta) {
            let path = self.resource_dir(agent, key).join(disk::META_FILE);
            self.writer.send(writer::Op::WriteInOrder(path, bytes));
        }
    }

    fn queue_object(&self, agent: &str, key: &ResourceKey, object: &CachedObject) {
        let path = disk::object_path(
            &self.resource_dir(agent, key),
            &object.namespace,
            &object.name,
        );
        self.writer
            .send(writer::Op::Write(path, object.bytes.to_vec()));
    }

    fn queue_removal(&self, agent: &str, key: &ResourceKey, namespace: &str, name: &str) {
        let path = disk::object_path(&self.resource_dir(agent, key), namespace, name);
        self.writer.send(writer::Op::Remove(path));
    }

    /// Stores a complete list response (`{"kind":"PodList","items":[…]}`) for `scope`.
    pub fn store_list(
        &self,
        agent: &str,
        key: &ResourceKey,
        scope: &ListScope,
        list: &[u8],
    ) -> Result<usize, StoreError> {
        let (list_kind, rv, items) = split_list(list, key)?;
        self.touch();
        let mut all = self.write();
        let cache = all.entry((agent.to_string(), key.clone())).or_default();
        cache.meta.list_kind = list_kind;
        // Withdraw the claim first: a crash while the objects are written must not leave it.
        let had_record = cache.meta.lists.iter().any(|r| r.same_scope(scope));
        if had_record {
            let mut withdrawn = cache.meta.clone();
            withdrawn.lists.retain(|r| !r.same_scope(scope));
            self.queue_meta(agent, key, &withdrawn);
        }
        let count = items.len();
        let change = cache.replace_list(scope, items, rv)?;
        for (namespace, name) in &change.removed {
            self.queue_removal(agent, key, namespace, name);
        }
        for object_key in &change.written {
            if let Some(object) = cache.objects.get(object_key) {
                self.queue_object(agent, key, object);
            }
        }
        self.queue_meta(agent, key, &cache.meta);
        Ok(count)
    }

    /// Stores (or replaces) one object, from a get or a watch event.
    pub fn store_object(&self, agent: &str, key: &ResourceKey, value: Value) -> bool {
        let Some(object) = CachedObject::new(value).filter(is_safe_object) else {
            return false;
        };
        self.touch();
        let mut all = self.write();
        let cache = all.entry((agent.to_string(), key.clone())).or_default();
        if cache.objects.get(&object.key()).is_some_and(|old| {
            old.bytes == object.bytes
                || resource::is_newer(&old.resource_version, &object.resource_version)
        }) {
            return true;
        }
        self.queue_object(agent, key, &object);
        cache.objects.insert(object.key(), Arc::new(object));
        true
    }

    /// Forgets one object (deleted upstream, or a get answered 404).
    pub fn remove_object(&self, agent: &str, key: &ResourceKey, namespace: &str, name: &str) {
        self.touch();
        let mut all = self.write();
        if let Some(cache) = all.get_mut(&(agent.to_string(), key.clone()))
            && cache
                .objects
                .remove(&(namespace.to_string(), name.to_string()))
                .is_some()
        {
            self.queue_removal(agent, key, namespace, name);
        }
    }

    /// Remembers that the apiserver accepted `credential` (a hash) for this resource.
    pub fn record_credential(&self, agent: &str, key: &ResourceKey, credential: &str) {
        if self.credential_known(agent, key, credential) {
            return;
        }
        let mut all = self.write();
        let cache = all.entry((agent.to_string(), key.clone())).or_default();
        if cache.meta.credentials.insert(credential.to_string()) {
            self.queue_meta(agent, key, &cache.meta);
        }
    }

    pub fn credential_known(&self, agent: &str, key: &ResourceKey, credential: &str) -> bool {
        self.read()
            .get(&(agent.to_string(), key.clone()))
            .is_some_and(|c| c.meta.credentials.contains(credential))
    }

    /// A list response body from the cache.
    pub fn list(
        &self,
        agent: &str,
        key: &ResourceKey,
        scope: &ListScope,
    ) -> Result<Lookup, SelectorError> {
        let all = self.read();
        let Some(cache) = all.get(&(agent.to_string(), key.clone())) else {
            return Ok(Lookup::NotCached);
        };
        let Some((items, rv)) = cache.list(scope)? else {
            return Ok(Lookup::NotCached);
        };
        let list_kind = if cache.meta.list_kind.is_empty() {
            "List"
        } else {
            &cache.meta.list_kind
        };
        Ok(Lookup::Found(render_list(
            list_kind,
            &key.api_version(),
            &rv,
            &items,
        )))
    }

    /// One object from the cache.
    pub fn get(&self, agent: &str, key: &ResourceKey, namespace: &str, name: &str) -> Lookup {
        let all = self.read();
        let Some(cache) = all.get(&(agent.to_string(), key.clone())) else {
            return Lookup::NotCached;
        };
        if let Some(object) = cache
            .objects
            .get(&(namespace.to_string(), name.to_string()))
        {
            return Lookup::Found(object.bytes.clone());
        }
        let scope = ListScope {
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            ..ListScope::default()
        };
        match cache.covering(&scope) {
            Some(_) => Lookup::NotFound,
            None => Lookup::NotCached,
        }
    }

    /// The newest resourceVersion cached, `None` if nothing of that resource is cached.
    pub fn newest_version(&self, agent: &str, key: &ResourceKey) -> Option<String> {
        self.read()
            .get(&(agent.to_string(), key.clone()))
            .map(ResourceCache::newest_version)
    }

    /// The object kind (`Pod`) of a resource, from its stored list kind.
    pub fn object_kind(&self, agent: &str, key: &ResourceKey) -> String {
        self.read()
            .get(&(agent.to_string(), key.clone()))
            .map(|c| c.meta.list_kind.trim_end_matches("List").to_string())
            .unwrap_or_default()
    }

    /// Whether anything (objects or a list record) is cached for this agent and resource.
    pub fn has_resource(&self, agent: &str, key: &ResourceKey) -> bool {
        self.read().contains_key(&(agent.to_string(), key.clone()))
    }

    pub fn store_discovery(&self, agent: &str, path: &str, body: Bytes) {
        let Some(file) = disk::discovery_file_name(path) else {
            return;
        };
        let mut docs = self.discovery.write().unwrap_or_else(|e| e.into_inner());
        let slot = (agent.to_string(), path.to_string());
        if docs.get(&slot) == Some(&body) {
            return;
        }
        let file = self.root.join(agent).join(disk::DISCOVERY_DIR).join(file);
        self.writer.send(writer::Op::Write(file, body.to_vec()));
        docs.insert(slot, body);
    }

    /// A discovery document: this agent's, else any agent's (discovery is not per client).
    pub fn discovery(&self, agent: &str, path: &str) -> Option<Bytes> {
        let docs = self.discovery.read().unwrap_or_else(|e| e.into_inner());
        docs.get(&(agent.to_string(), path.to_string()))
            .cloned()
            .or_else(|| {
                docs.iter()
                    .find(|((_, p), _)| p == path)
                    .map(|(_, body)| body.clone())
            })
    }

    /// Waits until every change so far is on disk (tests, shutdown).
    pub fn flush(&self) {
        self.writer.flush_blocking();
    }

    pub fn stats(&self) -> CacheStats {
        let all = self.read();
        let agents: std::collections::BTreeSet<_> = all.keys().map(|(a, _)| a).collect();
        let stats = &self.writer.stats;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        CacheStats {
            agents: agents.len(),
            resources: all.len(),
            objects: all.values().map(|c| c.objects.len()).sum(),
            discovery_documents: self.discovery.read().map(|d| d.len()).unwrap_or(0),
            files_written: load(&stats.files_written),
            bytes_written: load(&stats.bytes_written),
            write_errors: load(&stats.errors),
            writes_coalesced: load(&stats.coalesced),
            write_backlog: self.writer.backlog(),
            seconds_since_update: self
                .updated
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map(|at| at.elapsed().as_secs()),
        }
    }
}

/// Why a response could not be cached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("not a list: {0}")]
    NotAList(String),
    /// One item that cannot be stored makes the whole list unstorable: a list recorded complete
    /// without it would answer offline that the object does not exist.
    #[error(
        "item {0} has no usable metadata (a name and namespace that are safe file names); the list is not cached"
    )]
    UnstorableItem(usize),
    #[error(transparent)]
    Selector(#[from] SelectorError),
}

/// `(list kind, resourceVersion, objects)` of a list; items get their `kind`/`apiVersion` filled
/// in so each file on disk is a complete object.
fn split_list(
    list: &[u8],
    key: &ResourceKey,
) -> Result<(String, String, Vec<CachedObject>), StoreError> {
    let list: RawList<'_> =
        serde_json::from_slice(list).map_err(|e| StoreError::NotAList(e.to_string()))?;
    let list_kind = list
        .kind
        .filter(|k| k.ends_with("List"))
        .ok_or_else(|| StoreError::NotAList("kind does not end in List".into()))?;
    let items = list
        .items
        .ok_or_else(|| StoreError::NotAList("no items array".into()))?;
    let kind = list_kind.trim_end_matches("List");
    let api_version = key.api_version();
    let objects = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            list_item(item, kind, &api_version)
                .filter(is_safe_object)
                .ok_or(StoreError::UnstorableItem(index))
        })
        .collect::<Result<_, _>>()?;
    Ok((list_kind, list.metadata.resource_version, objects))
}

/// What the cache reads of a list: its items stay text.
#[derive(serde::Deserialize)]
struct RawList<'a> {
    kind: Option<String>,
    #[serde(default)]
    metadata: ListMetadata,
    #[serde(borrow)]
    items: Option<Vec<&'a RawValue>>,
}

#[derive(Default, serde::Deserialize)]
struct ListMetadata {
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

/// One list item as an object of its own: the upstream's text, with the `kind` and `apiVersion`
/// that list items leave out put in front (a get of the object answers with both).
fn list_item(item: &RawValue, kind: &str, api_version: &str) -> Option<CachedObject> {
    let text = item.get();
    let head: ObjectHead = serde_json::from_str(text).ok()?;
    // Valid JSON whose head parsed is an object: it starts with '{' and has a member (the name).
    let members = text.strip_prefix('{')?;
    let mut bytes = Vec::with_capacity(text.len() + 64);
    bytes.push(b'{');
    let missing = [
        ("kind", head.kind.is_none(), kind),
        ("apiVersion", head.api_version.is_none(), api_version),
    ];
    for (field, absent, value) in missing {
        if absent {
            bytes.extend_from_slice(format!("\"{field}\":").as_bytes());
            bytes.extend_from_slice(&serde_json::to_vec(value).ok()?);
            bytes.push(b',');
        }
    }
    bytes.extend_from_slice(members.as_bytes());
    Some(CachedObject::with_head(head.metadata, Bytes::from(bytes)))
}

/// Whether the object's namespace and name are safe file names.
fn is_safe_object(object: &CachedObject) -> bool {
    let namespace_ok = object.namespace.is_empty() || is_safe_component(&object.namespace);
    namespace_ok && is_safe_component(&object.name)
}

/// `{"kind":…,"apiVersion":…,"metadata":{"resourceVersion":…},"items":[…]}` from stored bytes.
fn render_list(kind: &str, api_version: &str, rv: &str, items: &[Arc<CachedObject>]) -> Bytes {
    let header = serde_json::json!({"kind": kind, "apiVersion": api_version,
                                    "metadata": {"resourceVersion": rv}});
    let mut out = serde_json::to_vec(&header).unwrap_or_default();
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"items\":[");
    let size: usize = items.iter().map(|o| o.bytes.len() + 1).sum();
    out.reserve(size + 2);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.bytes);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests;
