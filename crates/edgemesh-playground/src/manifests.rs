//! The manifests directory every agent reads: the examples (Services, DestinationRules) as they
//! are in `examples/playground/`, plus the EndpointSlices an endpoint controller would have
//! written for the pods the playground starts.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{Value, json};

use crate::PlaygroundError;
use crate::plan::{NODES, NodeSpec};
use crate::pods::{PODS, PodSpec};

/// One example file, compiled into the binary so the playground runs from anywhere.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    pub file: &'static str,
    pub text: &'static str,
}

macro_rules! example {
    ($file:literal) => {
        Example {
            file: $file,
            text: include_str!(concat!("../../../examples/playground/", $file)),
        }
    };
}

/// `examples/playground/*.yaml`.
pub const EXAMPLES: [Example; 10] = [
    example!("hostname.yaml"),
    example!("tcp-echo.yaml"),
    example!("udp-echo.yaml"),
    example!("websocket-echo.yaml"),
    example!("lb-round-robin.yaml"),
    example!("lb-random.yaml"),
    example!("lb-consistent-hash.yaml"),
    example!("session-affinity.yaml"),
    example!("filtered.yaml"),
    example!("gateway.yaml"),
];

/// The generated file (sorted last so a reader sees the Services first).
pub const SLICES_FILE: &str = "zz-playground-endpointslices.yaml";
/// EdgeMesh's filter label.
pub const FILTER_LABEL: &str = "service.edgemesh.kubeedge.io/service-proxy-name";

/// A service port of an example and the pod port it targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub name: String,
    pub port: u16,
    pub target: u16,
    pub protocol: String,
}

/// What the playground needs to know about an example Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<PortInfo>,
    pub selector: BTreeMap<String, String>,
    /// Carries [`FILTER_LABEL`]: the agent must not proxy it.
    pub filtered: bool,
}

impl ServiceInfo {
    /// `name.namespace`, the short name a user types.
    pub fn dns_short(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    /// The fully qualified name the node-local DNS answers.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }

    /// The pods the selector matches (only the `app` label is used by our pods).
    pub fn pods(&self) -> Vec<&'static PodSpec> {
        PODS.iter()
            .filter(|p| {
                !self.selector.is_empty()
                    && self.selector.iter().all(|(k, v)| k == "app" && v == p.app)
            })
            .collect()
    }
}

/// Every Service of the examples.
pub fn services() -> Result<Vec<ServiceInfo>, PlaygroundError> {
    let mut out = Vec::new();
    for example in EXAMPLES {
        out.extend(parse_services(example)?);
    }
    Ok(out)
}

/// The Service called `name` among the examples.
pub fn service(name: &str) -> Result<ServiceInfo, PlaygroundError> {
    services()?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| PlaygroundError::Example {
            file: "examples/playground".into(),
            reason: format!("no Service named {name}"),
        })
}

/// The Services of one example file.
pub fn parse_services(example: Example) -> Result<Vec<ServiceInfo>, PlaygroundError> {
    let bad = |reason: String| PlaygroundError::Example {
        file: example.file.to_owned(),
        reason,
    };
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(example.text).map_err(|e| bad(e.to_string()))?;
    docs.iter()
        .filter(|d| d["kind"] == "Service")
        .map(|d| service_info(d).map_err(bad))
        .collect()
}

fn service_info(doc: &Value) -> Result<ServiceInfo, String> {
    let text = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{what} is missing or not a string"))
    };
    let meta = &doc["metadata"];
    let name = text(&meta["name"], "metadata.name")?;
    let cluster_ip = text(&doc["spec"]["clusterIP"], "spec.clusterIP")?;
    let cluster_ip = cluster_ip
        .parse()
        .map_err(|_| format!("{name}: spec.clusterIP {cluster_ip:?} is not an IPv4 address"))?;
    let ports = doc["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let ports = ports
        .iter()
        .map(port_info)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{name}: {e}"))?;
    let selector = doc["spec"]["selector"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok(ServiceInfo {
        namespace: meta["namespace"].as_str().unwrap_or("default").to_owned(),
        name,
        cluster_ip,
        ports,
        selector,
        filtered: meta["labels"].get(FILTER_LABEL).is_some(),
    })
}

fn port_info(port: &Value) -> Result<PortInfo, String> {
    let number = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
    let value = number(&port["port"]).ok_or_else(|| format!("bad port {}", port["port"]))?;
    let target = match &port["targetPort"] {
        Value::Null => value,
        other => number(other).ok_or_else(|| {
            format!("targetPort {other} must be a number (named ports are not supported here)")
        })?,
    };
    Ok(PortInfo {
        name: port["name"].as_str().unwrap_or_default().to_owned(),
        port: value,
        target,
        protocol: port["protocol"].as_str().unwrap_or("TCP").to_owned(),
    })
}

/// The EndpointSlice the endpoint controller would write for `svc` and its pods; `None` for a
/// Service without a selector.
pub fn endpoint_slice(svc: &ServiceInfo) -> Option<Value> {
    if svc.selector.is_empty() {
        return None;
    }
    let ports: Vec<Value> = svc
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "port": p.target, "protocol": p.protocol}))
        .collect();
    let endpoints: Vec<Value> = svc
        .pods()
        .iter()
        .filter_map(|p| {
            let ip = p.ip()?.to_string();
            Some(json!({
                "addresses": [ip], "nodeName": p.node, "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": p.name, "namespace": svc.namespace},
            }))
        })
        .collect();
    Some(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{}-playground", svc.name), "namespace": svc.namespace,
                     "labels": {"kubernetes.io/service-name": svc.name}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
}

/// Writes the examples and the generated EndpointSlices into `dir` (created if needed).
pub fn write_dir(dir: &Path) -> Result<usize, PlaygroundError> {
    std::fs::create_dir_all(dir).map_err(|e| PlaygroundError::file(dir, e))?;
    let mut slices = Vec::new();
    for example in EXAMPLES {
        let path = dir.join(example.file);
        std::fs::write(&path, example.text).map_err(|e| PlaygroundError::file(&path, e))?;
        for svc in parse_services(example)? {
            slices.extend(endpoint_slice(&svc));
        }
    }
    // JSON is YAML: one document per object.
    let text: Vec<String> = slices.iter().map(Value::to_string).collect();
    let path = dir.join(SLICES_FILE);
    std::fs::write(&path, text.join("\n---\n") + "\n")
        .map_err(|e| PlaygroundError::file(&path, e))?;
    let nodes: Vec<String> = NODES.iter().map(|n| node_object(n).to_string()).collect();
    let path = dir.join(NODES_FILE);
    std::fs::write(&path, nodes.join("\n---\n") + "\n")
        .map_err(|e| PlaygroundError::file(&path, e))?;
    Ok(EXAMPLES.len() + 2)
}

/// The generated Node objects (their InternalIPs let SOCKS5 reach a node by name).
pub const NODES_FILE: &str = "zz-playground-nodes.yaml";

/// A Node as the API would report it: its name and InternalIP.
pub fn node_object(node: &NodeSpec) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name},
        "status": {"addresses": [{"type": "InternalIP", "address": node.ip.to_string()}]}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses_and_selects_pods() {
        let services = services().unwrap();
        assert_eq!(services.len(), 9);
        for svc in &services {
            assert!(!svc.pods().is_empty(), "{} selects no pod", svc.name);
            assert!(!svc.ports.is_empty(), "{}", svc.name);
            let ip = svc.cluster_ip.octets();
            assert!(ip[0] == 10 && (96..112).contains(&ip[1]), "{}", svc.name);
            for port in &svc.ports {
                let pods = svc.pods();
                assert!(pods.iter().all(|p| p.port == port.target), "{}", svc.name);
            }
        }
        let filtered: Vec<_> = services.iter().filter(|s| s.filtered).collect();
        assert_eq!(filtered.len(), 1);
    }

    #[test]
    fn slices_list_each_pod_on_its_node() {
        let svc = service("hostname-lb-svc").unwrap();
        let slice = endpoint_slice(&svc).unwrap();
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "hostname-lb-svc"
        );
        assert_eq!(slice["ports"][0]["port"], 9376);
        let nodes: Vec<&str> = slice["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["nodeName"].as_str().unwrap())
            .collect();
        assert_eq!(nodes, ["edge-a1", "edge-a2", "edge-b1"]);
        assert_eq!(slice["endpoints"][2]["addresses"][0], "198.51.100.11");
    }

    #[test]
    fn bad_examples_name_the_file_and_the_field() {
        let cases = [
            (
                "kind: Service\nmetadata: {name: a}\nspec: {}\n",
                "spec.clusterIP",
            ),
            (
                "kind: Service\nmetadata: {name: a}\nspec: {clusterIP: x}\n",
                "not an IPv4",
            ),
            (
                "kind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 1, targetPort: web}]}\n",
                "named ports",
            ),
            ("kind: [\n", "bad.yaml"),
        ];
        for (text, want) in cases {
            let err = parse_services(Example {
                file: "bad.yaml",
                text,
            })
            .unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("bad.yaml") && msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn written_directory_has_every_example_and_the_slices() {
        let dir = std::env::temp_dir().join(format!("emp-manifests-{}", std::process::id()));
        let written = write_dir(&dir).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(names.len(), written);
        assert!(names.iter().any(|n| n == SLICES_FILE) && names.iter().any(|n| n == NODES_FILE));
    }
}
