//! Turning untyped documents (YAML/JSON manifests) into validated resources.

use edgemesh_model::{Resource, ResourceKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::convert::{self, InvalidObject};

/// What one document is, to the mesh.
#[derive(Debug)]
pub enum Decoded {
    Resource(Resource),
    /// A kind the mesh does not read (a Deployment, a ConfigMap, ...).
    Ignored,
    Invalid(InvalidObject),
}

/// The objects of one document: the items of a `kind: List`, nothing for an empty document
/// (`---` at the end of a file), the document itself otherwise.
pub fn expand_list(doc: Value) -> Vec<Value> {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"));
    match doc {
        Value::Null => Vec::new(),
        Value::Object(mut list) if is_list => match list.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        other => vec![other],
    }
}

/// Decodes one manifest document by its `apiVersion` and `kind`.
pub fn decode(doc: &Value) -> Decoded {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("", "Service") => typed(doc, ResourceKind::Service, |s| {
            convert::service(&s).map(Resource::Service)
        }),
        ("", "Endpoints") => typed(doc, ResourceKind::Endpoints, |e| {
            convert::endpoints(&e).map(Resource::Endpoints)
        }),
        ("discovery.k8s.io", "EndpointSlice") => typed(doc, ResourceKind::EndpointSlice, |e| {
            convert::endpoint_slice(&e).map(Resource::EndpointSlice)
        }),
        ("", "Node") => typed(doc, ResourceKind::Node, |n| {
            convert::node(&n).map(Resource::Node)
        }),
        ("networking.istio.io", "DestinationRule") => {
            result(convert::destination_rule(doc).map(Resource::DestinationRule))
        }
        _ => Decoded::Ignored,
    }
}

fn typed<T: DeserializeOwned>(
    doc: &Value,
    kind: ResourceKind,
    convert: impl FnOnce(T) -> Result<Resource, InvalidObject>,
) -> Decoded {
    match T::deserialize(doc) {
        Ok(object) => result(convert(object)),
        Err(e) => Decoded::Invalid(InvalidObject {
            kind,
            key: key_of(doc),
            reason: format!("does not match the {kind} schema: {e}"),
        }),
    }
}

fn result(r: Result<Resource, InvalidObject>) -> Decoded {
    r.map_or_else(Decoded::Invalid, Decoded::Resource)
}

fn key_of(doc: &Value) -> edgemesh_model::ObjectKey {
    let text = |p: &str| {
        doc.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    edgemesh_model::ObjectKey::new(text("/metadata/namespace"), text("/metadata/name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_known_kinds_and_ignores_others() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
                         "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}});
        assert!(matches!(
            decode(&svc),
            Decoded::Resource(Resource::Service(_))
        ));
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert!(matches!(decode(&deploy), Decoded::Ignored));
        let dr = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule",
                        "metadata": {"name": "a", "namespace": "x"}, "spec": {}});
        assert!(matches!(
            decode(&dr),
            Decoded::Resource(Resource::DestinationRule(_))
        ));
    }

    #[test]
    fn schema_mismatch_is_invalid_and_named() {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "a", "namespace": "n"}, "spec": {"ports": "eighty"}});
        let Decoded::Invalid(e) = decode(&svc) else {
            panic!("expected invalid")
        };
        assert!(
            e.to_string().starts_with("Service n/a: does not match"),
            "{e}"
        );
    }

    #[test]
    fn lists_are_expanded() {
        let list = json!({"kind": "List", "items": [{"kind": "Service"}, {"kind": "Node"}]});
        assert_eq!(expand_list(list).len(), 2);
        assert!(expand_list(Value::Null).is_empty());
    }
}
