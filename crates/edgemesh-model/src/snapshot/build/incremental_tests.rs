//! `build_next` rebuilds only the changed services, and its result is always the full build's.

use std::net::{IpAddr, Ipv4Addr};

use crate::catalog::{Catalog, Resource, ResourceKind, ResourceRef, SourceId};
use crate::fixtures::{cluster_ip_service, endpoint_slice};
use crate::spec::*;
use crate::{BuildOptions, Snapshot};

fn cluster_ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 96, 0, last))
}

fn pod(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

/// Service `ns/name` at ClusterIP .`ip` with one endpoint at pod .`endpoint`.
fn service(catalog: &mut Catalog, name: &str, ip: u8, endpoint: u8) {
    let spec = cluster_ip_service("ns", name, cluster_ip(ip), 80);
    let slice = endpoint_slice(&spec, &[(pod(endpoint), "n1")], 8080);
    catalog.upsert(SourceId::KubeApi, Resource::Service(spec.into()));
    catalog.upsert(SourceId::KubeApi, Resource::EndpointSlice(slice.into()));
}

fn options(version: u64) -> BuildOptions {
    BuildOptions {
        version,
        ..BuildOptions::default()
    }
}

/// The services and the frontend index (frontend, owner, port) of `snapshot`.
fn view(snapshot: &Snapshot) -> impl PartialEq + std::fmt::Debug {
    let frontends: Vec<_> = snapshot
        .proxied_frontends()
        .map(|(f, port)| {
            let (owner, _) = snapshot.route(&f).unwrap();
            (f, owner.key().clone(), port.clone())
        })
        .collect();
    (snapshot.services.clone(), frontends, snapshot.nodes.clone())
}

/// Builds the next snapshot both ways: the incremental one must equal the full one.
fn next(catalog: &mut Catalog, previous: &Snapshot) -> Snapshot {
    let version = previous.version + 1;
    let full = catalog.build_snapshot(options(version)).0;
    let next = catalog.build_next(previous, options(version)).0;
    assert_eq!(view(&next), view(&full));
    next
}

fn ten_services() -> (Catalog, Snapshot) {
    let mut catalog = Catalog::new();
    for i in 1..=10 {
        service(&mut catalog, &format!("s{i}"), i, i);
    }
    let first = catalog.build_next(&Snapshot::empty(), options(1)).0;
    assert!(first.changes.is_none(), "the first build is a full one");
    (catalog, first)
}

#[test]
fn an_endpoint_change_rebuilds_only_its_service() {
    let (mut catalog, first) = ten_services();
    service(&mut catalog, "s3", 3, 99);
    let second = next(&mut catalog, &first);
    let changes = second.changes.as_ref().expect("built incrementally");
    assert_eq!(changes.since, 1);
    assert_eq!(changes.services, [ObjectKey::new("ns", "s3")]);
    let s3 = &second.services[&ObjectKey::new("ns", "s3")];
    assert_eq!(s3.ports[0].backends[0].addr.ip(), pod(99));
    // Every other service is the previous Snapshot's own.
    let s4 = ObjectKey::new("ns", "s4");
    assert!(std::sync::Arc::ptr_eq(
        &first.services[&s4],
        &second.services[&s4]
    ));
}

#[test]
fn added_removed_and_unchanged_objects() {
    let (mut catalog, first) = ten_services();
    service(&mut catalog, "s11", 11, 11);
    catalog.remove(&ResourceRef {
        kind: ResourceKind::Service,
        key: ObjectKey::new("ns", "s1"),
    });
    let second = next(&mut catalog, &first);
    assert!(second.changes.is_some());
    assert!(
        second
            .route(&crate::Frontend {
                ip: cluster_ip(1),
                port: 80,
                protocol: Protocol::Tcp
            })
            .is_none()
    );
    // The same objects again (a resync): nothing to rebuild.
    service(&mut catalog, "s2", 2, 2);
    let third = next(&mut catalog, &second);
    assert_eq!(third.changes.as_ref().unwrap().services, []);
}

#[test]
fn a_relist_counts_only_what_differs() {
    let (mut catalog, first) = ten_services();
    let mut services: Vec<Resource> = (1..=10)
        .map(|i| {
            Resource::Service(cluster_ip_service("ns", &format!("s{i}"), cluster_ip(i), 80).into())
        })
        .collect();
    services.pop(); // s10 is gone
    catalog.replace_kind(SourceId::KubeApi, ResourceKind::Service, services);
    let second = next(&mut catalog, &first);
    assert_eq!(
        second.changes.as_ref().unwrap().services,
        [ObjectKey::new("ns", "s10")]
    );
}

#[test]
fn frontend_conflicts_and_other_kinds_take_a_full_build() {
    let (mut catalog, first) = ten_services();
    // s12 claims s5's ClusterIP: which one keeps it is the full build's decision.
    service(&mut catalog, "s12", 5, 12);
    let second = next(&mut catalog, &first);
    assert!(second.changes.is_none());
    // s12 leaves: the build after a contested one is full, the one after that incremental.
    catalog.remove(&ResourceRef {
        kind: ResourceKind::Service,
        key: ObjectKey::new("ns", "s12"),
    });
    let third = next(&mut catalog, &second);
    assert!(third.changes.is_none());
    service(&mut catalog, "s6", 6, 60);
    let third = next(&mut catalog, &third);
    assert!(third.changes.is_some());
    // A Node is no service's: full.
    catalog.upsert(
        SourceId::KubeApi,
        Resource::Node(
            NodeSpec {
                name: "n1".into(),
                ..NodeSpec::default()
            }
            .into(),
        ),
    );
    let fourth = next(&mut catalog, &third);
    assert!(fourth.changes.is_none());
    assert_eq!(fourth.nodes.len(), 1);
}

#[test]
fn the_loser_of_a_conflict_leaving_takes_a_full_build() {
    let (mut catalog, first) = ten_services();
    // "a5" sorts before "s5": it wins s5's ClusterIP in the full build.
    service(&mut catalog, "a5", 5, 50);
    let second = next(&mut catalog, &first);
    // s5, which lost, changes its endpoint: its frontend is a5's, so a full build decides.
    service(&mut catalog, "s5", 5, 51);
    let third = next(&mut catalog, &second);
    assert!(third.changes.is_none());
    // a5 leaves: s5 gets its frontend back.
    catalog.remove(&ResourceRef {
        kind: ResourceKind::Service,
        key: ObjectKey::new("ns", "a5"),
    });
    let fourth = next(&mut catalog, &third);
    let (owner, _) = fourth
        .route(&crate::Frontend {
            ip: cluster_ip(5),
            port: 80,
            protocol: Protocol::Tcp,
        })
        .unwrap();
    assert_eq!(*owner.key(), ObjectKey::new("ns", "s5"));
}
