//! The cached state of one resource type for one agent: its objects, the lists known complete,
//! and the credentials the apiserver accepted for it. Pure: the disk side lives in `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use edgemesh_selector::{FieldSelector, LabelSelector, SelectorError};

/// One cached object: its serialized form (answers are these bytes) and, parsed only when a
/// selector needs it, its JSON tree.
#[derive(Debug)]
pub struct CachedObject {
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub bytes: Bytes,
    parsed: OnceLock<Value>,
}

/// What the cache reads of an object's JSON; everything else is skipped without being built.
#[derive(Deserialize)]
pub(crate) struct ObjectHead {
    pub kind: Option<String>,
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub metadata: HeadMetadata,
}

#[derive(Deserialize)]
pub(crate) struct HeadMetadata {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, rename = "resourceVersion")]
    pub resource_version: String,
}

impl CachedObject {
    /// `None` when the object has no name.
    pub fn new(value: Value) -> Option<Self> {
        let name = value.pointer("/metadata/name")?.as_str()?.to_string();
        let field = |p: &str| value.pointer(p).and_then(Value::as_str).unwrap_or("");
        let namespace = field("/metadata/namespace").to_string();
        let resource_version = field("/metadata/resourceVersion").to_string();
        let bytes = Bytes::from(serde_json::to_vec(&value).ok()?);
        Some(Self {
            namespace,
            name,
            resource_version,
            bytes,
            parsed: OnceLock::from(value),
        })
    }

    /// From one object's JSON text, reading only its metadata; `None` when the text is not a
    /// complete JSON object with a name.
    pub fn from_bytes(bytes: Bytes) -> Option<Self> {
        let head: ObjectHead = serde_json::from_slice(&bytes).ok()?;
        Some(Self::with_head(head.metadata, bytes))
    }

    /// From text already known to be valid JSON whose metadata is `metadata`.
    pub(crate) fn with_head(metadata: HeadMetadata, bytes: Bytes) -> Self {
        Self {
            namespace: metadata.namespace,
            name: metadata.name,
            resource_version: metadata.resource_version,
            bytes,
            parsed: OnceLock::new(),
        }
    }

    /// The JSON tree, parsed on first use (selectors on labels and fields).
    pub fn value(&self) -> &Value {
        self.parsed
            .get_or_init(|| serde_json::from_slice(&self.bytes).unwrap_or(Value::Null))
    }

    pub fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.name.clone())
    }
}

/// Whether resourceVersion `a` is newer than `b`. resourceVersions are opaque to clients, but
/// every apiserver hands out etcd revisions (integers); anything else compares as "not newer", so
/// the latest write wins as before.
pub fn is_newer(a: &str, b: &str) -> bool {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    }
}

/// A list the apiserver answered in full: which namespace and selectors it covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRecord {
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: String,
}

impl ListRecord {
    fn unselected(&self) -> bool {
        self.label_selector.is_none() && self.field_selector.is_none()
    }

    fn covers_namespace(&self, namespace: Option<&str>) -> bool {
        self.namespace.is_none() || self.namespace.as_deref() == namespace
    }

    /// Whether this list contained every object a list with `scope` would return.
    pub fn covers(&self, scope: &ListScope) -> bool {
        if self.unselected() {
            return self.covers_namespace(scope.namespace.as_deref());
        }
        self.namespace == scope.namespace
            && self.label_selector == scope.label_selector
            && self.field_selector == scope.field_selector
    }

    pub fn same_scope(&self, scope: &ListScope) -> bool {
        self.namespace == scope.namespace
            && self.label_selector == scope.label_selector
            && self.field_selector == scope.field_selector
    }
}

/// Records of complete lists with a label or field selector kept per resource and agent.
pub const MAX_SELECTED_LISTS: usize = 64;

/// The objects of a list answer and the resourceVersion to report.
pub type ListAnswer = (Vec<Arc<CachedObject>>, String);

/// What a list request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListScope {
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

impl ListScope {
    fn matcher(&self) -> Result<Matcher, SelectorError> {
        Ok(Matcher {
            namespace: self.namespace.clone(),
            labels: LabelSelector::parse(self.label_selector.as_deref().unwrap_or(""))?,
            fields: FieldSelector::parse(self.field_selector.as_deref().unwrap_or(""))?,
        })
    }
}

struct Matcher {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Matcher {
    fn matches(&self, object: &CachedObject) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == object.namespace)
            && (self.labels.is_empty() || self.labels.matches(object.value()))
            && (self.fields.is_empty() || self.fields.matches(object.value()))
    }
}

/// Persisted next to the objects as `.edgemesh-meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub list_kind: String,
    #[serde(default)]
    pub lists: Vec<ListRecord>,
    /// SHA-256 of the credentials the apiserver accepted for this resource (hex).
    #[serde(default)]
    pub credentials: BTreeSet<String>,
}

/// Objects of one resource type for one agent.
#[derive(Debug, Default)]
pub struct ResourceCache {
    pub objects: BTreeMap<(String, String), Arc<CachedObject>>,
    pub meta: Meta,
}

/// What replacing a list changed, for the disk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListChange {
    pub written: Vec<(String, String)>,
    pub removed: Vec<(String, String)>,
}

impl ResourceCache {
    /// Replaces the objects a list with `scope` covers by `items` and records the list.
    pub fn replace_list(
        &mut self,
        scope: &ListScope,
        items: Vec<CachedObject>,
        resource_version: String,
    ) -> Result<ListChange, SelectorError> {
        let matcher = scope.matcher()?;
        let fresh: BTreeSet<_> = items.iter().map(CachedObject::key).collect();
        // A complete list is the upstream's truth, whatever the resourceVersions: after an etcd
        // restore they go backwards, and objects kept for a "newer" version would be ghosts. An
        // event that raced the list comes again on the watch that follows it (from the list's
        // resourceVersion), so nothing newer is lost for long.
        let removed: Vec<_> = self
            .objects
            .iter()
            .filter(|(key, object)| matcher.matches(object) && !fresh.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &removed {
            self.objects.remove(key);
        }
        let mut written = Vec::with_capacity(items.len());
        for item in items {
            if self
                .objects
                .get(&item.key())
                .is_some_and(|old| old.bytes == item.bytes)
            {
                continue;
            }
            written.push(item.key());
            self.objects.insert(item.key(), Arc::new(item));
        }
        self.meta.lists.retain(|r| !r.same_scope(scope));
        self.meta.lists.push(ListRecord {
            namespace: scope.namespace.clone(),
            label_selector: scope.label_selector.clone(),
            field_selector: scope.field_selector.clone(),
            resource_version,
        });
        self.forget_oldest_selected_lists();
        Ok(ListChange { written, removed })
    }

    /// Keeps at most [`MAX_SELECTED_LISTS`] records of lists with a selector, the newest: a
    /// client that lists with ever new selectors must not grow the metadata file (rewritten on
    /// every list) without bound. Forgetting a record only makes that list "not cached" offline.
    fn forget_oldest_selected_lists(&mut self) {
        let selected = self.meta.lists.iter().filter(|r| !r.unselected()).count();
        let mut excess = selected.saturating_sub(MAX_SELECTED_LISTS);
        self.meta.lists.retain(|r| {
            let forget = excess > 0 && !r.unselected();
            excess -= usize::from(forget);
            !forget
        });
    }

    /// The covering list record, if the cache can answer a list with `scope` truthfully.
    pub fn covering(&self, scope: &ListScope) -> Option<&ListRecord> {
        self.meta.lists.iter().find(|r| r.covers(scope))
    }

    /// Matching objects and the resourceVersion to report, or `None` if never listed in full.
    pub fn list(&self, scope: &ListScope) -> Result<Option<ListAnswer>, SelectorError> {
        let Some(record) = self.covering(scope) else {
            return Ok(None);
        };
        let matcher = scope.matcher()?;
        let items: Vec<_> = self
            .objects
            .values()
            .filter(|o| matcher.matches(o))
            .cloned()
            .collect();
        let newest = self
            .objects
            .values()
            .map(|o| o.resource_version.as_str())
            .chain(std::iter::once(record.resource_version.as_str()))
            .max_by_key(|rv| rv.parse::<u64>().unwrap_or(0))
            .unwrap_or("")
            .to_string();
        Ok(Some((items, newest)))
    }

    /// The newest resourceVersion the cache has seen (for bookmarks).
    pub fn newest_version(&self) -> String {
        self.objects
            .values()
            .map(|o| o.resource_version.as_str())
            .chain(self.meta.lists.iter().map(|r| r.resource_version.as_str()))
            .max_by_key(|rv| rv.parse::<u64>().unwrap_or(0))
            .unwrap_or("")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str, app: &str) -> CachedObject {
        CachedObject::new(json!({"metadata": {"name": name, "namespace": ns,
            "resourceVersion": "7", "labels": {"app": app}}}))
        .unwrap()
    }

    fn scope(ns: Option<&str>, labels: Option<&str>) -> ListScope {
        ListScope {
            namespace: ns.map(str::to_string),
            label_selector: labels.map(str::to_string),
            field_selector: None,
        }
    }

    fn names(cache: &ResourceCache, s: &ListScope) -> Option<Vec<String>> {
        let (items, _) = cache.list(s).unwrap()?;
        Some(items.iter().map(|o| o.name.clone()).collect())
    }

    #[test]
    fn a_list_is_replaced_whole_and_only_within_its_scope() {
        let mut cache = ResourceCache::default();
        let all = scope(None, None);
        cache
            .replace_list(
                &all,
                vec![obj("a", "x", "web"), obj("b", "y", "db")],
                "10".into(),
            )
            .unwrap();
        let change = cache
            .replace_list(
                &scope(Some("a"), None),
                vec![obj("a", "z", "web")],
                "11".into(),
            )
            .unwrap();
        assert_eq!(change.removed, vec![("a".into(), "x".into())]);
        assert_eq!(names(&cache, &all).unwrap(), vec!["z", "y"]);
    }

    #[test]
    fn coverage_decides_between_answer_and_never_cached() {
        let mut cache = ResourceCache::default();
        assert_eq!(names(&cache, &scope(None, None)), None);
        cache
            .replace_list(
                &scope(Some("a"), Some("app=web")),
                vec![obj("a", "x", "web")],
                "5".into(),
            )
            .unwrap();
        // The same selected list is answered; a broader one is not (it was never seen).
        assert_eq!(
            names(&cache, &scope(Some("a"), Some("app=web"))).unwrap(),
            vec!["x"]
        );
        assert_eq!(names(&cache, &scope(Some("a"), None)), None);
        assert_eq!(names(&cache, &scope(None, Some("app=web"))), None);
        cache
            .replace_list(
                &scope(None, None),
                vec![obj("a", "x", "web"), obj("b", "y", "db")],
                "6".into(),
            )
            .unwrap();
        assert_eq!(names(&cache, &scope(Some("b"), None)).unwrap(), vec!["y"]);
        assert_eq!(
            names(&cache, &scope(None, Some("app=db"))).unwrap(),
            vec!["y"]
        );
        // An empty answer is only given when a complete list says so.
        assert_eq!(
            names(&cache, &scope(Some("c"), None)).unwrap(),
            Vec::<String>::new()
        );
    }

    fn obj_at(ns: &str, name: &str, rv: &str) -> CachedObject {
        CachedObject::new(
            json!({"metadata": {"name": name, "namespace": ns, "resourceVersion": rv}}),
        )
        .unwrap()
    }

    /// After an etcd restore resourceVersions go backwards: a complete list replaces whatever
    /// the cache holds, objects with higher versions (from before the restore) included.
    #[test]
    fn a_complete_list_replaces_the_cache_whatever_the_versions() {
        let mut cache = ResourceCache::default();
        let all = scope(None, None);
        cache
            .replace_list(
                &all,
                vec![obj_at("a", "x", "20"), obj_at("a", "gone", "21")],
                "21".into(),
            )
            .unwrap();
        let change = cache
            .replace_list(&all, vec![obj_at("a", "x", "9")], "10".into())
            .unwrap();
        assert_eq!(change.removed, vec![("a".into(), "gone".into())]);
        assert_eq!(change.written, vec![("a".into(), "x".into())]);
        assert_eq!(
            cache.objects[&("a".into(), "x".into())].resource_version,
            "9"
        );
        assert_eq!(names(&cache, &all).unwrap(), vec!["x"]);
        assert!(!is_newer("9", "10"));
        assert!(is_newer("11", "10"));
        assert!(!is_newer("abc", "10"));
    }

    #[test]
    fn selected_list_records_are_bounded_oldest_first() {
        let mut cache = ResourceCache::default();
        cache
            .replace_list(&scope(None, None), vec![], "1".into())
            .unwrap();
        for i in 0..1500 {
            let selector = format!("app=a{i}");
            cache
                .replace_list(&scope(None, Some(&selector)), vec![], "2".into())
                .unwrap();
        }
        assert_eq!(cache.meta.lists.len(), MAX_SELECTED_LISTS + 1);
        assert!(cache.meta.lists.iter().any(|r| r.unselected()));
        assert!(cache.covering(&scope(None, Some("app=a1499"))).is_some());
        let oldest_kept = 1500 - MAX_SELECTED_LISTS;
        let kept = format!("app=a{oldest_kept}");
        let forgotten = format!("app=a{}", oldest_kept - 1);
        let record = |s: &str| {
            cache
                .meta
                .lists
                .iter()
                .any(|r| r.label_selector.as_deref() == Some(s))
        };
        assert!(record(&kept) && !record(&forgotten));
    }

    #[test]
    fn unchanged_objects_are_not_rewritten() {
        let mut cache = ResourceCache::default();
        let all = scope(None, None);
        cache
            .replace_list(&all, vec![obj("a", "x", "web")], "1".into())
            .unwrap();
        let change = cache
            .replace_list(
                &all,
                vec![obj("a", "x", "web"), obj("a", "n", "web")],
                "2".into(),
            )
            .unwrap();
        assert_eq!(change.written, vec![("a".into(), "n".into())]);
        assert_eq!(cache.meta.lists.len(), 1);
    }
}
