//! Builders of specs for tests and benchmarks (not used by the agent itself).

use std::net::{IpAddr, Ipv4Addr};

use crate::catalog::{Catalog, Resource, SourceId};
use crate::spec::{
    EndpointPortSpec, EndpointSetSpec, EndpointSpec, EndpointSubset, Exposure, ObjectKey, Protocol,
    ServiceKind, ServicePortSpec, ServiceSpec, TargetPort,
};

/// A port numbered `number` with the same target port.
pub fn service_port(name: &str, protocol: Protocol, number: u16) -> ServicePortSpec {
    ServicePortSpec {
        name: crate::port_name(name),
        protocol,
        port: number,
        target_port: TargetPort::Number(number),
        app_protocol: None,
    }
}

/// A service of `kind` with `ports`, no label, no affinity.
pub fn service(
    namespace: &str,
    name: &str,
    kind: ServiceKind,
    ports: Vec<ServicePortSpec>,
) -> ServiceSpec {
    ServiceSpec {
        key: ObjectKey::new(namespace, name),
        kind,
        ports,
        has_proxy_name_label: false,
        session_affinity: None,
    }
}

/// A ClusterIP service with one TCP port named `http`.
pub fn cluster_ip_service(namespace: &str, name: &str, ip: IpAddr, port: u16) -> ServiceSpec {
    let kind = ServiceKind::ClusterIp {
        cluster_ips: vec![ip],
    };
    service(
        namespace,
        name,
        kind,
        vec![service_port("http", Protocol::Tcp, port)],
    )
}

/// `service` (a ClusterIP spec) also reachable from outside as `exposure` says.
pub fn exposed(mut service: ServiceSpec, exposure: Exposure) -> ServiceSpec {
    let cluster_ips = service.kind.cluster_ips().to_vec();
    service.kind = ServiceKind::Exposed {
        cluster_ips,
        exposure: Box::new(exposure),
    };
    service
}

/// An EndpointSlice for `service` with one ready endpoint per IP, port `http`.
pub fn endpoint_slice(service: &ServiceSpec, ips: &[(IpAddr, &str)], port: u16) -> EndpointSetSpec {
    EndpointSetSpec {
        key: ObjectKey::new(
            &service.key.namespace,
            format!("{}-slice", service.key.name),
        ),
        service: service.key.clone(),
        subsets: vec![EndpointSubset {
            ports: vec![EndpointPortSpec {
                name: crate::port_name("http"),
                protocol: Protocol::Tcp,
                port,
            }],
            endpoints: ips
                .iter()
                .map(|(ip, node)| EndpointSpec {
                    ip: *ip,
                    ready: true,
                    node_name: Some(crate::node_name(node)),
                    hostname: None,
                })
                .collect(),
        }],
    }
}

/// A catalog of `services` ClusterIP services with `endpoints_per_service` endpoints each, spread
/// over 100 nodes: the shape of the 10,000-service benchmark.
pub fn large_catalog(services: u32, endpoints_per_service: u32) -> Catalog {
    let mut catalog = Catalog::new();
    let mut items = Vec::new();
    for i in 0..services {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + i));
        let svc = cluster_ip_service("bench", &format!("svc-{i}"), ip, 80);
        let eps: Vec<(IpAddr, String)> = (0..endpoints_per_service)
            .map(|j| {
                let n = i * endpoints_per_service + j;
                (
                    IpAddr::V4(Ipv4Addr::from(0x0af4_0000 + n)),
                    format!("node-{}", n % 100),
                )
            })
            .collect();
        let eps: Vec<(IpAddr, &str)> = eps.iter().map(|(ip, n)| (*ip, n.as_str())).collect();
        items.push(Resource::EndpointSlice(
            endpoint_slice(&svc, &eps, 8080).into(),
        ));
        items.push(Resource::Service(svc.into()));
    }
    for item in items {
        catalog.upsert(SourceId::Manifests, item);
    }
    catalog
}
