//! `destination.subset`: which endpoints of a Service a subset of its DestinationRule admits.
//!
//! As Istio: the DestinationRule whose `host` names the Service defines `subsets[]` by pod
//! labels; a destination with `subset: v1` goes only to the endpoints whose pod carries every
//! label of `v1`. Endpoints are matched to pods by IP (EndpointSlices carry no labels). Only a
//! DestinationRule in the Service's own namespace is considered (Istio's `exportTo` and rules
//! in other namespaces are not).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use edgemesh_model::ingress::Ingress;
use edgemesh_model::{DestinationRuleSpec, ObjectKey};

/// The endpoints a subset admits, by pod IP, resolved when the table is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsetPods {
    pub name: String,
    pub ips: HashSet<IpAddr>,
}

/// A destination's subset: resolved, or why not (answered 503 with this text, which names it).
pub type Subset = Result<Arc<SubsetPods>, Arc<str>>;

/// `name`, `name.namespace`, `name.namespace.svc[.cluster.local]` → the Service's key.
pub fn service_of(host: &str, namespace: &str) -> Option<ObjectKey> {
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [name] => Some(ObjectKey::new(namespace, *name)),
        [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => {
            Some(ObjectKey::new(*ns, *name))
        }
        _ => None,
    }
}

/// The DestinationRule in `service`'s namespace whose `host` names it (the first by name when
/// several do, so that the choice is stable).
pub fn rule_for<'a>(ingress: &'a Ingress, service: &ObjectKey) -> Option<&'a DestinationRuleSpec> {
    ingress
        .destination_rules
        .values()
        .map(|rule| &**rule)
        .filter(|rule| rule.key.namespace == service.namespace)
        .find(|rule| service_of(&rule.host, &rule.key.namespace).as_ref() == Some(service))
}

/// Whether a pod with `labels` carries every label of `selector` (an empty selector: any pod).
pub fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Resolves subset `name` of `service` against the Snapshot's DestinationRules and Pods.
pub fn resolve(ingress: &Ingress, service: &ObjectKey, name: &str) -> Subset {
    let Some(rule) = rule_for(ingress, service) else {
        return Err(format!(
            "subset {name:?} of Service {service}: no DestinationRule in namespace {} has host {}",
            service.namespace, service.name
        )
        .into());
    };
    let Some(subset) = rule.subsets.iter().find(|s| s.name == name) else {
        return Err(format!(
            "subset {name:?} of Service {service}: not defined in DestinationRule {}",
            rule.key
        )
        .into());
    };
    let ips = ingress
        .pods
        .values()
        .filter(|pod| pod.key.namespace == service.namespace)
        .filter(|pod| labels_match(&subset.labels, &pod.labels))
        .filter_map(|pod| pod.ip)
        .collect();
    Ok(Arc::new(SubsetPods {
        name: name.to_string(),
        ips,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgemesh_model::{LbPolicy, PodSpec, SubsetSpec};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod(ns: &str, name: &str, ip: [u8; 4], l: &[(&str, &str)]) -> Arc<PodSpec> {
        Arc::new(PodSpec {
            key: ObjectKey::new(ns, name),
            ip: Some(ip.into()),
            labels: labels(l),
        })
    }

    fn ingress_with_rule(host: &str) -> Ingress {
        let rule = DestinationRuleSpec {
            key: ObjectKey::new("ns", "web-rule"),
            policy: LbPolicy::RoundRobin,
            host: host.into(),
            subsets: vec![
                SubsetSpec {
                    name: "v1".into(),
                    labels: labels(&[("version", "v1")]),
                },
                SubsetSpec {
                    name: "v2".into(),
                    labels: labels(&[("version", "v2"), ("app", "web")]),
                },
            ],
        };
        let mut ingress = Ingress::default();
        ingress
            .destination_rules
            .insert(rule.key.clone(), Arc::new(rule));
        for p in [
            pod(
                "ns",
                "a",
                [10, 0, 0, 1],
                &[("app", "web"), ("version", "v1")],
            ),
            pod(
                "ns",
                "b",
                [10, 0, 0, 2],
                &[("app", "web"), ("version", "v2")],
            ),
            pod("ns", "c", [10, 0, 0, 3], &[("version", "v2")]),
            pod(
                "other",
                "d",
                [10, 0, 0, 4],
                &[("app", "web"), ("version", "v1")],
            ),
        ] {
            ingress.pods.insert(p.key.clone(), p);
        }
        ingress
    }

    fn ips(subset: &Subset) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = subset.as_ref().unwrap().ips.iter().copied().collect();
        ips.sort();
        ips
    }

    #[test]
    fn every_label_of_the_subset_must_be_on_the_pod() {
        assert!(labels_match(&labels(&[]), &labels(&[("a", "1")])));
        assert!(labels_match(
            &labels(&[("a", "1")]),
            &labels(&[("a", "1"), ("b", "2")])
        ));
        assert!(!labels_match(
            &labels(&[("a", "1"), ("b", "2")]),
            &labels(&[("a", "1")])
        ));
        assert!(!labels_match(
            &labels(&[("a", "1")]),
            &labels(&[("a", "2")])
        ));
    }

    #[test]
    fn a_subset_admits_the_pods_of_the_service_namespace_with_its_labels() {
        let web = ObjectKey::new("ns", "web");
        for host in ["web", "web.ns", "web.ns.svc.cluster.local"] {
            let ingress = ingress_with_rule(host);
            assert_eq!(
                ips(&resolve(&ingress, &web, "v1")),
                vec![IpAddr::from([10, 0, 0, 1])],
                "{host}"
            );
            // Pod c has version v2 but not app: web.
            assert_eq!(
                ips(&resolve(&ingress, &web, "v2")),
                vec![IpAddr::from([10, 0, 0, 2])]
            );
        }
    }

    #[test]
    fn an_unknown_subset_or_rule_is_named_in_the_error() {
        let ingress = ingress_with_rule("web");
        let err = resolve(&ingress, &ObjectKey::new("ns", "web"), "v3").unwrap_err();
        assert!(
            err.contains("\"v3\"") && err.contains("ns/web-rule"),
            "{err}"
        );
        let err = resolve(&ingress, &ObjectKey::new("ns", "api"), "v1").unwrap_err();
        assert!(
            err.contains("\"v1\"") && err.contains("no DestinationRule"),
            "{err}"
        );
        // A rule in another namespace does not apply.
        let other = ingress_with_rule("web.other");
        let err = resolve(&other, &ObjectKey::new("other", "web"), "v1").unwrap_err();
        assert!(err.contains("no DestinationRule"), "{err}");
    }
}
