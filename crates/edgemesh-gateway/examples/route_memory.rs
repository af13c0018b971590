//! Where the gateway's memory goes per route: the heap bytes live after each stage for N
//! Services + Endpoints + VirtualServices on one Gateway with two ports (the shape of
//! `scripts/bench/gateway_vs.py` and `scripts/bench-gateway.sh`), counted by a wrapping global
//! allocator, so the figures are the heap's own, without allocator slack.
//!
//!   cargo run --release -p edgemesh-gateway --example route_memory -- 1000
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use edgemesh_gateway::{Identity, RouteTable};
use edgemesh_model::fixtures::{cluster_ip_service, endpoint_slice};
use edgemesh_model::ingress::{
    DestinationSpec, GatewaySpec, HttpRouteSpec, ServerProtocol, ServerSpec, VirtualServiceSpec,
};
use edgemesh_model::{BuildOptions, Catalog, ObjectKey, Resource, Snapshot, SourceId};

#[path = "../../edgemesh-testkit/include/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live;

fn virtual_service(i: u32) -> VirtualServiceSpec {
    VirtualServiceSpec {
        key: ObjectKey::new("default", format!("vs-{i}")),
        hosts: vec![format!("vs-{i}.bench.example")],
        gateways: vec!["edgemesh-gateway".into()],
        http: vec![HttpRouteSpec {
            route: vec![DestinationSpec {
                host: format!("svc-{i}"),
                port: Some(80),
                subset: None,
                weight: 100,
            }],
            ..HttpRouteSpec::default()
        }],
        tcp: vec![],
        tls: vec![],
    }
}

fn main() {
    let routes: u32 = std::env::args()
        .nth(1)
        .map_or(1_000, |n| n.parse().expect("a number of routes"));
    let mut last = live();
    let mut report = |stage: &str| {
        let now = live();
        let grown = now - last;
        println!(
            "{stage:<44} {:>7.2} MiB  {:>6} B/route",
            grown as f64 / (1 << 20) as f64,
            grown / routes as isize
        );
        last = now;
    };
    let mut catalog = Catalog::new();
    let server = |port: u16| ServerSpec {
        port,
        port_name: format!("p{port}"),
        protocol: ServerProtocol::Http,
        hosts: vec!["*".into()],
        tls: None,
    };
    catalog.upsert(
        SourceId::Manifests,
        Resource::Gateway(Arc::new(GatewaySpec {
            key: ObjectKey::new("default", "edgemesh-gateway"),
            selector: BTreeMap::from([("kubeedge".into(), "edgemesh-gateway".into())]),
            servers: vec![server(23333), server(23443)],
        })),
    );
    report("(the Gateway)");
    let backend: IpAddr = [192, 0, 2, 11].into();
    for i in 0..routes {
        let ip = IpAddr::from([10, 97, (i / 250) as u8, (i % 250 + 1) as u8]);
        let service = cluster_ip_service("default", &format!("svc-{i}"), ip, 80);
        let endpoints = endpoint_slice(&service, &[(backend, "n1")], 8080);
        catalog.upsert(SourceId::Manifests, Resource::Service(service.into()));
        catalog.upsert(SourceId::Manifests, Resource::Endpoints(endpoints.into()));
    }
    report("catalog: Services + Endpoints");
    for i in 0..routes {
        let vs = virtual_service(i);
        catalog.upsert(SourceId::Manifests, Resource::VirtualService(vs.into()));
    }
    report("catalog: VirtualServices");
    let options = BuildOptions {
        version: 1,
        ..BuildOptions::default()
    };
    let snapshot = catalog.build_next(&Snapshot::empty(), options).0;
    report("Snapshot (shares the catalog's specs)");
    let table = RouteTable::compile(&snapshot, &Identity::edgemesh_default());
    report("route table (two ports)");
    assert_eq!(table.ports.len(), 2);
    assert_eq!(table.ports[&23333].http.len(), routes as usize);
    println!(
        "{:<44} {:>7.2} MiB  {:>6} B/route",
        "total",
        live() as f64 / (1 << 20) as f64,
        live() / routes as isize
    );
    drop((table, snapshot, catalog));
}
