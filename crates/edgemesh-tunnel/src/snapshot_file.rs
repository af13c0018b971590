//! A tiny static "snapshot" of allowed endpoints, for the example node and the tests: a JSON
//! list of `{ "protocol": "TCP", "addr": "10.244.1.5:8080", "node": "edge-1" }`, each becoming a
//! one-port ClusterIP service with that single ready endpoint.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use edgemesh_model::{
    BuildOptions, Catalog, EndpointPortSpec, EndpointSetSpec, EndpointSpec, EndpointSubset,
    NodeAddress, NodeSpec, ObjectKey, Protocol, Resource, ServiceKind, ServicePortSpec,
    ServiceSpec, Snapshot, SourceId, TargetPort,
};
use serde::{Deserialize, Serialize};

/// One endpoint a remote agent may make its node dial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedEndpoint {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    pub node: String,
}

/// Builds a snapshot in which exactly these endpoints are ready backends.
pub fn snapshot_from_endpoints(endpoints: &[AllowedEndpoint]) -> Snapshot {
    let mut catalog = Catalog::new();
    for (i, ep) in endpoints.iter().enumerate() {
        let (service, slice) = one_endpoint_service(i, ep);
        catalog.upsert(SourceId::Manifests, Resource::Service(service.into()));
        catalog.upsert(SourceId::Manifests, Resource::EndpointSlice(slice.into()));
    }
    catalog.build_snapshot(BuildOptions::default()).0
}

/// Adds Nodes (name and InternalIP) to a snapshot: what SOCKS5 resolves node names with.
pub fn with_nodes(mut snapshot: Snapshot, nodes: &[(String, IpAddr)]) -> Snapshot {
    for (name, ip) in nodes {
        let spec = NodeSpec {
            name: name.clone(),
            addresses: vec![NodeAddress {
                kind: "InternalIP".into(),
                ip: *ip,
            }],
            ..NodeSpec::default()
        };
        snapshot.nodes.insert(name.clone(), spec);
    }
    snapshot
}

fn one_endpoint_service(i: usize, ep: &AllowedEndpoint) -> (ServiceSpec, EndpointSetSpec) {
    let key = ObjectKey::new("static", format!("ep-{i}"));
    // A made-up ClusterIP per entry: only the backends matter to the tunnel.
    let cluster_ip = IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + i as u32 + 1));
    let service = ServiceSpec {
        key: key.clone(),
        kind: ServiceKind::ClusterIp {
            cluster_ips: vec![cluster_ip],
        },
        ports: vec![ServicePortSpec {
            name: "p".into(),
            protocol: ep.protocol,
            port: ep.addr.port(),
            target_port: TargetPort::Number(ep.addr.port()),
            app_protocol: None,
        }],
        has_proxy_name_label: false,
        session_affinity: None,
    };
    let slice = EndpointSetSpec {
        key: ObjectKey::new("static", format!("ep-{i}-slice")),
        service: key,
        subsets: vec![EndpointSubset {
            ports: vec![EndpointPortSpec {
                name: "p".into(),
                protocol: ep.protocol,
                port: ep.addr.port(),
            }],
            endpoints: vec![EndpointSpec {
                ip: ep.addr.ip(),
                ready: true,
                node_name: Some(edgemesh_model::node_name(&ep.node)),
                hostname: None,
            }],
        }],
    };
    (service, slice)
}
