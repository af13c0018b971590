//! Services, EndpointSlices and DestinationRules as the tests write them (JSON is YAML).

use serde_json::{Map, Value, json};

use super::NODE_NAME;

/// One service port and the pod port it targets.
#[derive(Debug, Clone, Copy)]
pub struct Port {
    pub name: &'static str,
    /// u32 so a test can write an invalid port (70000).
    pub port: u32,
    pub target: u16,
    pub protocol: &'static str,
}

impl Port {
    const fn new(name: &'static str, protocol: &'static str, port: u32, target: u16) -> Port {
        Port {
            name,
            port,
            target,
            protocol,
        }
    }
}

pub const HTTP: Port = Port::new("http", "TCP", 80, 8080);
pub const HTTPS: Port = Port::new("https", "TCP", 443, 8443);
pub const ECHO: Port = Port::new("echo", "TCP", 7000, 9000);
pub const UDP: Port = Port::new("udp", "UDP", 7001, 9001);
pub const WS: Port = Port::new("ws", "TCP", 8765, 8765);

/// A Service in namespace `shop` and its one EndpointSlice.
#[derive(Debug, Clone)]
pub struct Svc {
    name: String,
    cluster_ip: String,
    ports: Vec<Port>,
    endpoints: Vec<(String, String)>,
    spec: Map<String, Value>,
    labels: Map<String, Value>,
    /// `spec.ports[].nodePort` by port name.
    node_ports: Vec<(&'static str, u16)>,
}

impl Svc {
    /// `name` at `cluster_ip` with the HTTP port and no endpoints yet.
    pub fn new(name: &str, cluster_ip: &str) -> Svc {
        Svc {
            name: name.into(),
            cluster_ip: cluster_ip.into(),
            ports: vec![HTTP],
            endpoints: Vec::new(),
            spec: Map::new(),
            labels: Map::new(),
            node_ports: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ports(mut self, ports: &[Port]) -> Svc {
        self.ports = ports.to_vec();
        self
    }

    /// Endpoints on this node (the agent's node name).
    pub fn endpoints(mut self, ips: &[&str]) -> Svc {
        for ip in ips {
            self.endpoints.push(((*ip).into(), NODE_NAME.into()));
        }
        self
    }

    /// An endpoint on another node.
    pub fn remote_endpoint(mut self, ip: &str, node: &str) -> Svc {
        self.endpoints.push((ip.into(), node.into()));
        self
    }

    /// Sets `spec.KEY = value` (e.g. sessionAffinity).
    pub fn spec(mut self, key: &str, value: Value) -> Svc {
        self.spec.insert(key.into(), value);
        self
    }

    /// `type: NodePort` with `node_port` on the port named like `port.name`.
    pub fn node_port(mut self, port: Port, node_port: u16) -> Svc {
        self.spec.insert("type".into(), json!("NodePort"));
        self.node_ports.push((port.name, node_port));
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Svc {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The Service and the EndpointSlice as a two-document YAML file.
    pub fn yaml(&self) -> String {
        format!("{}\n---\n{}\n", self.service(), self.slice())
    }

    /// The Service and the EndpointSlice as objects, for the apiserver double.
    pub fn objects(&self) -> [Value; 2] {
        [self.service(), self.slice()]
    }

    fn service(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| {
                let mut port = json!({"name": p.name, "port": p.port, "protocol": p.protocol, "targetPort": p.target});
                if let Some((_, node_port)) = self.node_ports.iter().find(|(n, _)| *n == p.name) {
                    port["nodePort"] = json!(node_port);
                }
                port
            })
            .collect();
        let mut spec = self.spec.clone();
        spec.insert("clusterIP".into(), json!(self.cluster_ip));
        spec.insert("ports".into(), json!(ports));
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": self.name, "namespace": "shop", "labels": self.labels},
            "spec": spec,
        })
    }

    fn slice(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| json!({"name": p.name, "port": p.target, "protocol": p.protocol}))
            .collect();
        let endpoints: Vec<Value> = self
            .endpoints
            .iter()
            .map(|(ip, node)| json!({"addresses": [ip], "nodeName": node, "conditions": {"ready": true}}))
            .collect();
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{}-x1", self.name), "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": self.name}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        })
    }
}

/// A DestinationRule named like the service with `trafficPolicy.loadBalancer = lb`.
pub fn destination_rule(service: &str, lb: Value) -> String {
    let rule = json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
        "metadata": {"name": service, "namespace": "shop"},
        "spec": {"host": format!("{service}.shop.svc.cluster.local"),
                 "trafficPolicy": {"loadBalancer": lb}},
    });
    format!("{rule}\n")
}
