//! The resources the fixture serves and the discovery documents describing them.

use serde_json::{Value, json};

/// Group of the Istio networking CRDs.
pub const ISTIO_GROUP: &str = "networking.istio.io";
/// Group of EndpointSlices.
pub const DISCOVERY_GROUP: &str = "discovery.k8s.io";

/// Group of CertificateSigningRequests.
pub const CERTIFICATES_GROUP: &str = "certificates.k8s.io";

/// One served resource. Objects are stored once per resource, whatever version a client uses.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    pub group: &'static str,
    /// Served versions, preferred first.
    pub versions: &'static [&'static str],
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Built-in types: list items carry no kind/apiVersion (as upstream); CRD items do.
    pub builtin: bool,
    /// Field labels usable in `fieldSelector`, beyond metadata.name/namespace.
    pub extra_fields: &'static [&'static str],
}

const fn core(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group: "",
        versions: &["v1"],
        plural,
        singular,
        kind,
        namespaced,
        short_names: &[],
        builtin: true,
        extra_fields: &[],
    }
}

/// `certificates.k8s.io/v1` CertificateSigningRequests (cluster-scoped; see `csr.rs`).
pub const CERTIFICATE_SIGNING_REQUESTS: Resource = Resource {
    group: CERTIFICATES_GROUP,
    short_names: &["csr"],
    extra_fields: &["spec.signerName"],
    ..core(
        "certificatesigningrequests",
        "certificatesigningrequest",
        "CertificateSigningRequest",
        false,
    )
};

/// Every resource this fixture knows.
pub static ALL: &[Resource] = &[
    Resource {
        short_names: &["svc"],
        ..core("services", "service", "Service", true)
    },
    Resource {
        short_names: &["ep"],
        ..core("endpoints", "endpoints", "Endpoints", true)
    },
    Resource {
        short_names: &["no"],
        extra_fields: &["spec.unschedulable"],
        ..core("nodes", "node", "Node", false)
    },
    Resource {
        short_names: &["po"],
        extra_fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ..core("pods", "pod", "Pod", true)
    },
    Resource {
        short_names: &["cm"],
        ..core("configmaps", "configmap", "ConfigMap", true)
    },
    Resource {
        extra_fields: &["type"],
        ..core("secrets", "secret", "Secret", true)
    },
    Resource {
        short_names: &["ns"],
        extra_fields: &["status.phase"],
        ..core("namespaces", "namespace", "Namespace", false)
    },
    Resource {
        group: DISCOVERY_GROUP,
        ..core("endpointslices", "endpointslice", "EndpointSlice", true)
    },
    Resource {
        group: "coordination.k8s.io",
        ..core("leases", "lease", "Lease", true)
    },
    CERTIFICATE_SIGNING_REQUESTS,
    Resource {
        group: ISTIO_GROUP,
        versions: &["v1beta1", "v1alpha3"],
        short_names: &["dr"],
        builtin: false,
        ..core(
            "destinationrules",
            "destinationrule",
            "DestinationRule",
            true,
        )
    },
    Resource {
        group: ISTIO_GROUP,
        versions: &["v1beta1", "v1alpha3"],
        short_names: &["gw"],
        builtin: false,
        ..core("gateways", "gateway", "Gateway", true)
    },
    Resource {
        group: ISTIO_GROUP,
        versions: &["v1beta1", "v1alpha3"],
        short_names: &["vs"],
        builtin: false,
        ..core("virtualservices", "virtualservice", "VirtualService", true)
    },
];

impl Resource {
    /// `v1` or `group/version`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Field labels accepted in a `fieldSelector`.
    pub fn field_labels(&self) -> Vec<&'static str> {
        let mut labels = vec!["metadata.name", "metadata.namespace"];
        labels.extend_from_slice(self.extra_fields);
        labels
    }

    fn discovery_entry(&self) -> Value {
        json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": self.short_names,
        })
    }
}

/// Which optional groups a fixture serves.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    pub endpointslices: bool,
    pub istio: bool,
}

impl Served {
    pub fn serves(&self, r: &Resource) -> bool {
        match r.group {
            DISCOVERY_GROUP => self.endpointslices,
            ISTIO_GROUP => self.istio,
            _ => true,
        }
    }

    /// The served resource at `group`/`version` named `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        ALL.iter().find(|r| {
            r.group == group
                && r.plural == plural
                && r.versions.contains(&version)
                && self.serves(r)
        })
    }

    /// The served resource for an object's `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<(&'static Resource, String)> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let r = ALL.iter().find(|r| {
            r.group == group && r.kind == kind && r.versions.contains(&version) && self.serves(r)
        })?;
        Some((r, version.to_owned()))
    }

    fn groups(&self) -> Vec<&'static str> {
        let mut groups: Vec<&str> = ALL
            .iter()
            .filter(|r| !r.group.is_empty() && self.serves(r))
            .map(|r| r.group)
            .collect();
        groups.dedup();
        groups
    }

    fn group_doc(&self, group: &str) -> Option<Value> {
        let r = ALL.iter().find(|r| r.group == group && self.serves(r))?;
        let versions: Vec<Value> = r
            .versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        Some(json!({"name": group, "versions": versions, "preferredVersion": versions[0]}))
    }

    /// `/apis/{group}` (APIGroup).
    pub fn api_group(&self, group: &str) -> Option<Value> {
        let mut doc = self.group_doc(group)?;
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// `/apis` (APIGroupList).
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .into_iter()
            .filter_map(|g| self.group_doc(g))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/api/v1` or `/apis/{group}/{version}` (APIResourceList); `None` if not served.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let resources: Vec<Value> = ALL
            .iter()
            .filter(|r| r.group == group && r.versions.contains(&version) && self.serves(r))
            .map(Resource::discovery_entry)
            .collect();
        if resources.is_empty() {
            return None;
        }
        let group_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
        )
    }
}

/// `/api` (APIVersions).
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0-edgemesh-testkit",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_groups_disappear_from_discovery() {
        let all = Served {
            endpointslices: true,
            istio: true,
        };
        let old = Served {
            endpointslices: false,
            istio: false,
        };
        assert!(all.find(DISCOVERY_GROUP, "v1", "endpointslices").is_some());
        assert!(old.find(DISCOVERY_GROUP, "v1", "endpointslices").is_none());
        assert!(
            all.find(ISTIO_GROUP, "v1alpha3", "destinationrules")
                .is_some()
        );
        assert!(old.resource_list(ISTIO_GROUP, "v1beta1").is_none());
        let groups = old.api_group_list().to_string();
        assert!(!groups.contains(ISTIO_GROUP) && !groups.contains(DISCOVERY_GROUP));
        assert!(all.api_group_list().to_string().contains(ISTIO_GROUP));
    }

    #[test]
    fn kinds_resolve_for_every_served_version() {
        let all = Served {
            endpointslices: true,
            istio: true,
        };
        for (api_version, kind) in [
            ("v1", "Service"),
            ("discovery.k8s.io/v1", "EndpointSlice"),
            ("networking.istio.io/v1beta1", "DestinationRule"),
            ("networking.istio.io/v1alpha3", "DestinationRule"),
            ("networking.istio.io/v1beta1", "Gateway"),
            ("networking.istio.io/v1alpha3", "VirtualService"),
            ("v1", "Secret"),
            ("certificates.k8s.io/v1", "CertificateSigningRequest"),
        ] {
            assert!(
                all.find_kind(api_version, kind).is_some(),
                "{api_version} {kind}"
            );
        }
        assert!(all.find_kind("v2", "Service").is_none());
        assert!(all.find_kind("v1", "Nope").is_none());
    }
}
