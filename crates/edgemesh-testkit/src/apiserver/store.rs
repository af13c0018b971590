//! The fixture's storage: objects per resource, one global resourceVersion, and the event
//! history watches resume from.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::resources::Resource;
use super::status::ApiError;

/// First resourceVersion handed out; clearly different from "0" (= "any").
const FIRST_RV: u64 = 1000;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as stored in the history and broadcast to watches.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub resource: &'static str,
    pub kind: EventType,
    /// The object before a modification (selector transitions need it).
    pub old: Option<Value>,
    pub object: Value,
}

type Key = (String, String);

/// Objects, history and the resourceVersion counter. Guarded by one mutex; every change is
/// recorded and broadcast under it, so a watch that snapshots and subscribes under the same
/// lock misses nothing.
#[derive(Debug)]
pub struct Store {
    pub rv: u64,
    next_uid: u64,
    objects: HashMap<&'static str, BTreeMap<Key, Value>>,
    history: Vec<Arc<Event>>,
    /// Watches from a resourceVersion below this get 410 Expired.
    pub compacted_below: u64,
    pub events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    pub fn new() -> Store {
        let (events, _) = broadcast::channel(4096);
        Store {
            rv: FIRST_RV,
            next_uid: 1,
            objects: HashMap::new(),
            history: Vec::new(),
            compacted_below: 0,
            events,
        }
    }

    /// Objects of `r` in `namespace` (all namespaces when `None`), in name order.
    pub fn list(&self, r: &Resource, namespace: Option<&str>) -> Vec<Value> {
        let Some(objects) = self.objects.get(r.plural) else {
            return Vec::new();
        };
        objects
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Objects of `r` after `after` (all when `None`), in key order, borrowed: a paged list
    /// clones only the page it returns, so listing N objects in pages costs O(N), not O(N²).
    pub fn list_after<'a>(
        &'a self,
        r: &Resource,
        after: Option<&Key>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let start = match after {
            Some(key) => Bound::Excluded(key.clone()),
            None => Bound::Unbounded,
        };
        self.objects
            .get(r.plural)
            .into_iter()
            .flat_map(move |objects| objects.range((start.clone(), Bound::Unbounded)))
            .map(|(_, o)| o)
    }

    pub fn get(&self, r: &Resource, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(r.plural)?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Events of `r` after `rv`, oldest first.
    pub fn history_after(&self, r: &Resource, rv: u64) -> Vec<Arc<Event>> {
        self.history
            .iter()
            .filter(|e| e.rv > rv && e.resource == r.plural)
            .cloned()
            .collect()
    }

    /// Forgets the history: every resourceVersion handed out so far becomes too old to watch
    /// from (the counter moves on, so a fresh list still gives a usable one).
    pub fn compact(&mut self) {
        self.rv += 1;
        self.compacted_below = self.rv;
        self.history.clear();
    }

    /// Creates `obj` (normalized by [`normalize`]); 409 if it exists.
    pub fn create(&mut self, r: &'static Resource, mut obj: Value) -> Result<Value, ApiError> {
        let (ns, name) = key_of(&obj);
        if self.get(r, &ns, &name).is_some() {
            return Err(ApiError::already_exists(r.plural, r.group, &name));
        }
        let uid = self.next_uid;
        self.next_uid += 1;
        let meta = &mut obj["metadata"];
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{uid:012x}"));
        meta["creationTimestamp"] = json!(super::time::now_rfc3339());
        meta["generation"] = json!(1);
        Ok(self.commit(r, EventType::Added, None, obj))
    }

    /// Replaces an existing object. With `check_rv`, a stale `metadata.resourceVersion` in
    /// `obj` is a 409 Conflict (optimistic concurrency, as upstream).
    pub fn replace(
        &mut self,
        r: &'static Resource,
        mut obj: Value,
        check_rv: bool,
    ) -> Result<Value, ApiError> {
        let (ns, name) = key_of(&obj);
        let old = self
            .get(r, &ns, &name)
            .ok_or_else(|| ApiError::not_found(r.plural, r.group, &name))?;
        let sent_rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if check_rv
            && !sent_rv.is_empty()
            && Some(sent_rv)
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::conflict(r.plural, r.group, &name));
        }
        for field in ["uid", "creationTimestamp"] {
            obj["metadata"][field] = old["metadata"][field].clone();
        }
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let spec_changed = without_meta_status(&old) != without_meta_status(&obj);
        obj["metadata"]["generation"] = json!(generation + u64::from(spec_changed));
        Ok(self.commit(r, EventType::Modified, Some(old), obj))
    }

    /// Deletes an object and returns it (with the deletion's resourceVersion).
    pub fn delete(
        &mut self,
        r: &'static Resource,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = (namespace.to_owned(), name.to_owned());
        let removed = self.objects.get_mut(r.plural).and_then(|m| m.remove(&key));
        let obj = removed.ok_or_else(|| ApiError::not_found(r.plural, r.group, name))?;
        Ok(self.commit(r, EventType::Deleted, None, obj))
    }

    /// Stamps a new resourceVersion, stores (or removes) the object, records and broadcasts.
    fn commit(
        &mut self,
        r: &'static Resource,
        kind: EventType,
        old: Option<Value>,
        mut obj: Value,
    ) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if kind != EventType::Deleted {
            self.objects
                .entry(r.plural)
                .or_default()
                .insert(key_of(&obj), obj.clone());
        }
        let event = Arc::new(Event {
            rv: self.rv,
            resource: r.plural,
            kind,
            old,
            object: obj.clone(),
        });
        self.history.push(event.clone());
        // No receiver is fine: nobody watches.
        let _ = self.events.send(event);
        obj
    }
}

/// Checks and completes an incoming object for `r`: apiVersion/kind set, a name (or
/// generateName), the namespace defaulted for namespaced resources and removed otherwise.
pub fn normalize(
    r: &Resource,
    version: &str,
    mut obj: Value,
    path_namespace: Option<&str>,
) -> Result<Value, ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    obj["apiVersion"] = json!(r.api_version(version));
    obj["kind"] = json!(r.kind);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    if meta["name"].as_str().unwrap_or("").is_empty() {
        let prefix = meta["generateName"].as_str().unwrap_or("").to_owned();
        if prefix.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("{} is invalid: metadata.name: Required value", r.kind),
            ));
        }
        meta["name"] = json!(format!("{prefix}{}", random_suffix()));
    }
    if r.namespaced {
        let body_ns = meta["namespace"].as_str().unwrap_or("").to_owned();
        let ns = match (path_namespace, body_ns.as_str()) {
            (Some(p), "") => p.to_owned(),
            (Some(p), b) if p != b => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({b}) does not match the namespace sent on the request ({p})"
                )));
            }
            (_, "") => "default".to_owned(),
            (_, b) => b.to_owned(),
        };
        meta["namespace"] = json!(ns);
    } else if let Some(m) = meta.as_object_mut() {
        m.remove("namespace");
    }
    Ok(obj)
}

fn random_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id());
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|i| alphabet[((n >> (i * 5)) as usize + i * 7) % alphabet.len()] as char)
        .collect()
}

pub fn key_of(obj: &Value) -> Key {
    let meta = &obj["metadata"];
    let get = |f: &str| meta[f].as_str().unwrap_or("").to_owned();
    (get("namespace"), get("name"))
}

fn without_meta_status(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(m) = copy.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    copy
}
