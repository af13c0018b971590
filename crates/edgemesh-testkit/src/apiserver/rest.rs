//! list, get, create, update, patch and delete.

use std::collections::HashMap;

use edgemesh_selector::{FieldSelector, LabelSelector};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::Shared;
use super::body::{Body, json as json_response};
use super::resources::Resource;
use super::route::Target;
use super::status::ApiError;
use super::store;

/// Which objects of a collection a request sees: namespace and selectors.
#[derive(Debug)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn from_request(
        target: &Target,
        params: &HashMap<String, String>,
    ) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(params.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut field_text = params.get("fieldSelector").cloned().unwrap_or_default();
        // A watch on one object's path: the same as selecting it by name.
        if let Some(name) = &target.name {
            field_text = format!("metadata.name={name},{field_text}");
        }
        let fields =
            FieldSelector::parse(&field_text).map_err(|e| ApiError::bad_request(e.to_string()))?;
        // Like upstream, a field the resource does not index is an error, not "matches nothing".
        let supported = target.resource.field_labels();
        if let Some(field) = fields.fields().find(|f| !supported.contains(f)) {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
        Ok(Filter {
            namespace: target.namespace.clone(),
            labels,
            fields,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        self.namespace.as_deref().is_none_or(|want| want == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

/// The object as a client of `version` sees it.
pub fn for_version(r: &Resource, version: &str, mut obj: Value) -> Value {
    obj["apiVersion"] = json!(r.api_version(version));
    obj
}

pub fn list(
    shared: &Shared,
    target: &Target,
    params: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_request(target, params)?;
    let page = Page::from_params(params)?;
    let r = target.resource;
    let store = shared.store();
    let matching = store
        .list_after(r, page.after.as_ref().map(|(_, last)| last))
        .filter(|o| filter.matches(o));
    let mut items: Vec<Value> = matching
        .take(page.limit.saturating_add(1))
        .cloned()
        .collect();
    let more = items.len() > page.limit;
    items.truncate(page.limit);
    // A continued list keeps the resourceVersion of its first page, as upstream does.
    let rv = page.after.as_ref().map_or(store.rv, |(rv, _)| *rv);
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if more && let Some(last) = items.last() {
        let (namespace, name) = object_key(last);
        metadata["continue"] = json!(format!("{rv}/{namespace}/{name}"));
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|o| list_item(r, &target.version, o))
        .collect();
    let list = json!({
        "kind": format!("{}List", r.kind),
        "apiVersion": r.api_version(&target.version),
        "metadata": metadata,
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list))
}

/// `limit` and `continue` of a list request. The token is `<resourceVersion>/<namespace>/<name>`
/// of the last item returned; later pages list the current objects after that key (upstream
/// serves them from the first page's snapshot, which only differs under concurrent writes).
struct Page {
    limit: usize,
    after: Option<(u64, (String, String))>,
}

impl Page {
    fn from_params(params: &HashMap<String, String>) -> Result<Page, ApiError> {
        let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
            None | Some(Ok(0)) => usize::MAX,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return Err(ApiError::bad_request(
                    "limit must be a non-negative integer",
                ));
            }
        };
        let after = match params.get("continue").filter(|c| !c.is_empty()) {
            None => None,
            Some(token) => Some(parse_continue(token).ok_or_else(|| {
                ApiError::bad_request(format!("invalid continue token '{token}'"))
            })?),
        };
        Ok(Page { limit, after })
    }
}

fn parse_continue(token: &str) -> Option<(u64, (String, String))> {
    let mut parts = token.splitn(3, '/');
    let rv = parts.next()?.parse().ok()?;
    Some((rv, (parts.next()?.to_string(), parts.next()?.to_string())))
}

fn object_key(obj: &Value) -> (String, String) {
    let text = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (text("/metadata/namespace"), text("/metadata/name"))
}

/// Upstream omits kind/apiVersion on the items of built-in lists; CRD lists keep them.
fn list_item(r: &Resource, version: &str, obj: Value) -> Value {
    let mut obj = for_version(r, version, obj);
    if r.builtin
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("kind");
        m.remove("apiVersion");
    }
    obj
}

pub fn get(shared: &Shared, target: &Target) -> Result<Response<Body>, ApiError> {
    let obj = current(shared, target)?;
    Ok(json_response(
        StatusCode::OK,
        &for_version(target.resource, &target.version, obj),
    ))
}

pub fn create(shared: &Shared, target: &Target, body: Value) -> Result<Response<Body>, ApiError> {
    let r = target.resource;
    let obj = store::normalize(r, &target.version, body, target.namespace.as_deref())?;
    let created = shared.store().create(r, obj)?;
    Ok(json_response(
        StatusCode::CREATED,
        &for_version(r, &target.version, created),
    ))
}

pub fn update(
    shared: &Shared,
    target: &Target,
    mut body: Value,
) -> Result<Response<Body>, ApiError> {
    let name = target.name.clone().unwrap_or_default();
    match body.pointer("/metadata/name").and_then(Value::as_str) {
        None | Some("") => body["metadata"]["name"] = json!(name),
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        Some(_) => {}
    }
    if target.subresource.as_deref() == Some("approval") {
        // The approval subresource writes the conditions only.
        let mut obj = current(shared, target)?;
        obj["status"]["conditions"] = body["status"]["conditions"].take();
        obj["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"].take();
        body = obj;
    } else if target.subresource.as_deref() == Some("status") {
        let mut obj = current(shared, target)?;
        obj["status"] = body["status"].take();
        obj["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"].take();
        body = obj;
    }
    write(shared, target, body, true)
}

pub fn patch(
    shared: &Shared,
    target: &Target,
    content_type: &str,
    patch: Value,
) -> Result<Response<Body>, ApiError> {
    let merge = content_type.starts_with("application/merge-patch+json")
        || content_type.starts_with("application/strategic-merge-patch+json");
    if !merge {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the test apiserver only supports merge patches, not {content_type}"),
        ));
    }
    let mut obj = current(shared, target)?;
    if target.subresource.as_deref() == Some("status") {
        merge_patch(&mut obj["status"], &patch["status"]);
    } else {
        merge_patch(&mut obj, &patch);
    }
    write(shared, target, obj, false)
}

pub fn delete(shared: &Shared, target: &Target) -> Result<Response<Body>, ApiError> {
    let r = target.resource;
    let name = target.name.as_deref().unwrap_or("");
    let deleted = shared
        .store()
        .delete(r, target.namespace.as_deref().unwrap_or(""), name)?;
    Ok(json_response(
        StatusCode::OK,
        &for_version(r, &target.version, deleted),
    ))
}

fn write(
    shared: &Shared,
    target: &Target,
    obj: Value,
    check_rv: bool,
) -> Result<Response<Body>, ApiError> {
    let r = target.resource;
    let obj = store::normalize(r, &target.version, obj, target.namespace.as_deref())?;
    let stored = shared.store().replace(r, obj, check_rv)?;
    Ok(json_response(
        StatusCode::OK,
        &for_version(r, &target.version, stored),
    ))
}

fn current(shared: &Shared, target: &Target) -> Result<Value, ApiError> {
    let r = target.resource;
    let name = target.name.as_deref().unwrap_or("");
    shared
        .store()
        .get(r, target.namespace.as_deref().unwrap_or(""), name)
        .ok_or_else(|| ApiError::not_found(r.plural, r.group, name))
}

/// RFC 7386 JSON merge patch (also used, approximately, for strategic merge patches).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in fields {
        if value.is_null() {
            if let Some(m) = target.as_object_mut() {
                m.remove(key);
            }
        } else {
            merge_patch(&mut target[key.as_str()], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "n": [1]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "n": [1]}));
    }
}
