//! Turning untyped documents (YAML/JSON manifests) into validated resources.

use std::sync::Arc;

use edgemesh_model::{Resource, ResourceKind};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Inputs;
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

/// Decodes one manifest document by its `apiVersion` and `kind`; a kind the role does not
/// read is [`Decoded::Ignored`] before it is converted (the agent never holds a Secret).
pub fn decode(doc: &Value, inputs: Inputs) -> Decoded {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match resource_kind(group, kind) {
        Some(kind) if inputs.reads(kind) => convert(doc, kind),
        _ => Decoded::Ignored,
    }
}

/// The kind a manifest's group and `kind` name, if the mesh reads it at all.
fn resource_kind(group: &str, kind: &str) -> Option<ResourceKind> {
    Some(match (group, kind) {
        ("", "Service") => ResourceKind::Service,
        ("", "Endpoints") => ResourceKind::Endpoints,
        ("discovery.k8s.io", "EndpointSlice") => ResourceKind::EndpointSlice,
        ("", "Node") => ResourceKind::Node,
        ("", "Secret") => ResourceKind::Secret,
        ("", "Pod") => ResourceKind::Pod,
        ("networking.istio.io", "DestinationRule") => ResourceKind::DestinationRule,
        ("networking.istio.io", "Gateway") => ResourceKind::Gateway,
        ("networking.istio.io", "VirtualService") => ResourceKind::VirtualService,
        _ => return None,
    })
}

fn convert(doc: &Value, kind: ResourceKind) -> Decoded {
    match kind {
        ResourceKind::Service => typed(doc, kind, |s| {
            result(convert::service(&s).map(|s| Resource::Service(s.into())))
        }),
        ResourceKind::Endpoints => typed(doc, kind, |e| {
            result(convert::endpoints(&e).map(|s| Resource::Endpoints(Arc::new(s))))
        }),
        ResourceKind::EndpointSlice => typed(doc, kind, |e| {
            result(convert::endpoint_slice(&e).map(|s| Resource::EndpointSlice(Arc::new(s))))
        }),
        ResourceKind::Node => typed(doc, kind, |n| {
            result(convert::node(&n).map(|s| Resource::Node(Arc::new(s))))
        }),
        ResourceKind::Pod => typed(doc, kind, |p| {
            result(convert::pod(&p).map(|s| Resource::Pod(Arc::new(s))))
        }),
        // A Secret without TLS keys is none of our business: no warning.
        ResourceKind::Secret => typed(doc, kind, |s| match convert::tls_secret(&s) {
            Ok(Some(spec)) => Decoded::Resource(Resource::Secret(spec.into())),
            Ok(None) => Decoded::Ignored,
            Err(e) => Decoded::Invalid(e),
        }),
        ResourceKind::DestinationRule => {
            result(convert::destination_rule(doc).map(|s| Resource::DestinationRule(Arc::new(s))))
        }
        ResourceKind::Gateway => {
            result(convert::gateway(doc).map(|s| Resource::Gateway(Arc::new(s))))
        }
        ResourceKind::VirtualService => {
            result(convert::virtual_service(doc).map(|v| Resource::VirtualService(Arc::new(v))))
        }
    }
}

fn typed<T: DeserializeOwned>(
    doc: &Value,
    kind: ResourceKind,
    convert: impl FnOnce(T) -> Decoded,
) -> Decoded {
    match T::deserialize(doc) {
        Ok(object) => convert(object),
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
            decode(&svc, Inputs::Agent),
            Decoded::Resource(Resource::Service(_))
        ));
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert!(matches!(decode(&deploy, Inputs::Agent), Decoded::Ignored));
        let dr = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule",
                        "metadata": {"name": "a", "namespace": "x"}, "spec": {}});
        assert!(matches!(
            decode(&dr, Inputs::Agent),
            Decoded::Resource(Resource::DestinationRule(_))
        ));
    }

    #[test]
    fn ingress_kinds_are_decoded_only_for_the_gateway() {
        let gw = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                        "metadata": {"name": "g"},
                        "spec": {"servers": [{"hosts": ["*"], "port": {"number": 80, "protocol": "HTTP"}}]}});
        let vs = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                        "metadata": {"name": "v"},
                        "spec": {"hosts": ["*"], "http": [{"route": [{"destination": {"host": "a"}}]}]}});
        let tls = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                         "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}});
        // Broken on purpose: the agent must not even look at it.
        let bad_secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"},
                                "data": {"tls.crt": "not base64!"}});
        for doc in [&gw, &vs, &tls, &bad_secret] {
            assert!(
                matches!(decode(doc, Inputs::Agent), Decoded::Ignored),
                "{doc}"
            );
        }
        assert!(matches!(
            decode(&gw, Inputs::Gateway),
            Decoded::Resource(Resource::Gateway(_))
        ));
        assert!(matches!(
            decode(&vs, Inputs::Gateway),
            Decoded::Resource(Resource::VirtualService(_))
        ));
        assert!(matches!(
            decode(&tls, Inputs::Gateway),
            Decoded::Resource(Resource::Secret(_))
        ));
        assert!(matches!(
            decode(&bad_secret, Inputs::Gateway),
            Decoded::Invalid(_)
        ));
        let opaque = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "p"},
                            "data": {"password": "cHc="}});
        assert!(matches!(decode(&opaque, Inputs::Gateway), Decoded::Ignored));
    }

    #[test]
    fn schema_mismatch_is_invalid_and_named() {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": "a", "namespace": "n"}, "spec": {"ports": "eighty"}});
        let Decoded::Invalid(e) = decode(&svc, Inputs::Agent) else {
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
