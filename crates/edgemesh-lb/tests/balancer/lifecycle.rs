use std::net::{IpAddr, Ipv4Addr};

use edgemesh_lb::{Balancer, ConsistentHashConfig, Destination, LoadBalancer, PickContext};
use edgemesh_model::fixtures::{cluster_ip_service, endpoint_slice};
use edgemesh_model::{BuildOptions, Catalog, Frontend, Protocol, Resource, Snapshot, SourceId};

use crate::common::*;

fn catalog_with(names: &[&str]) -> Catalog {
    let mut catalog = Catalog::new();
    for (i, name) in names.iter().enumerate() {
        let ip = IpAddr::V4(Ipv4Addr::new(10, 96, 1, i as u8 + 1));
        let svc = cluster_ip_service("ns", name, ip, 80);
        let backends = [(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, i as u8 + 1)),
            "node-a",
        )];
        let slice = endpoint_slice(&svc, &backends, 8080);
        catalog.upsert(SourceId::Manifests, Resource::Service(svc.into()));
        catalog.upsert(SourceId::Manifests, Resource::EndpointSlice(slice.into()));
    }
    catalog
}

fn snapshot(names: &[&str]) -> Snapshot {
    catalog_with(names)
        .build_snapshot(BuildOptions::default())
        .0
}

fn frontend_of(i: u8) -> Frontend {
    Frontend {
        ip: IpAddr::V4(Ipv4Addr::new(10, 96, 1, i + 1)),
        port: 80,
        protocol: Protocol::Tcp,
    }
}

#[test]
fn prune_drops_the_frontends_a_snapshot_no_longer_routes() {
    let lb = LoadBalancer::default();
    let both = snapshot(&["a", "b"]);
    for i in 0..2 {
        let frontend = frontend_of(i);
        let (service, port) = both.route(&frontend).expect("routed");
        let to = Destination {
            frontend: &frontend,
            service,
            port,
        };
        let picked = lb.pick(to, &PickContext::client(client(0)));
        assert!(picked.is_some());
    }
    assert_eq!(lb.frontend_count(), 2);
    lb.prune(&snapshot(&["a"]));
    assert_eq!(lb.frontend_count(), 1);
    assert!(lb.backend_loads(&frontend_of(1)).is_none());
}

#[test]
fn live_load_survives_a_backend_set_change() {
    let (lb, _) = balancer();
    let svc = service(edgemesh_model::LbPolicy::RoundRobin);
    let held = pick(&lb, &svc, &port(3), PickContext::client(client(0))).expect("a backend");
    let kept = held.backend.addr;
    let others = (0..3).map(backend_addr).filter(|a| *a != kept).take(1);
    let smaller = port_of(std::iter::once(kept).chain(others));
    let _ = addr_for(&lb, &svc, &smaller, client(0));
    let loads = lb.backend_loads(&frontend()).expect("state");
    assert_eq!(loads.len(), 2, "rebuilt for the new set");
    assert!(
        loads.contains(&(kept, 1)),
        "the held lease still counts: {loads:?}"
    );
    drop(held);
    assert!(
        lb.backend_loads(&frontend())
            .expect("state")
            .contains(&(kept, 0))
    );
}

#[test]
fn invalid_config_is_rejected_with_the_key_name() {
    let bad = ConsistentHashConfig {
        load: 0.5,
        ..ConsistentHashConfig::default()
    };
    let err = LoadBalancer::new(bad).expect_err("load below 1");
    assert!(err.to_string().contains("consistentHash.load"), "{err}");
}
