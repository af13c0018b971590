use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::catalog::{Catalog, Resource, SourceId};
use crate::fixtures::{cluster_ip_service, endpoint_slice, large_catalog};
use crate::spec::*;
use crate::{BuildOptions, Frontend, ProxyDecision, SkipReason};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 96, 0, last))
}

fn pod(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn catalog_with(items: Vec<Resource>) -> Catalog {
    let mut c = Catalog::new();
    for item in items {
        c.upsert(SourceId::Manifests, item);
    }
    c
}

fn frontend(last: u8, port: u16) -> Frontend {
    Frontend {
        ip: ip(last),
        port,
        protocol: Protocol::Tcp,
    }
}

#[test]
fn service_with_slice_routes_to_ready_backends() {
    let svc = cluster_ip_service("ns", "web", ip(1), 80);
    let mut slice = endpoint_slice(&svc, &[(pod(1), "n1"), (pod(2), "n2")], 8080);
    slice.subsets[0].endpoints[1].ready = false;
    let c = catalog_with(vec![
        Resource::Service(svc.into()),
        Resource::EndpointSlice(slice.into()),
    ]);
    let (snap, report) = c.build_snapshot(BuildOptions {
        version: 7,
        ..Default::default()
    });
    assert_eq!(snap.version, 7);
    assert!(report.warnings.is_empty());
    let (service, port) = snap.route(&frontend(1, 80)).expect("routed");
    assert_eq!(*service.key(), ObjectKey::new("ns", "web"));
    assert_eq!(port.backends.len(), 1);
    assert_eq!(port.backends[0].addr.to_string(), "192.0.2.1:8080");
    assert_eq!(port.backends[0].node_name.as_deref(), Some("n1"));
    assert_eq!(service.endpoints.len(), 1);
    assert!(snap.route(&frontend(1, 81)).is_none());
}

#[test]
fn filter_modes_decide_which_services_are_proxied() {
    let plain = cluster_ip_service("ns", "plain", ip(1), 80);
    let mut labelled = cluster_ip_service("ns", "labelled", ip(2), 80);
    labelled.has_proxy_name_label = true;
    let c = catalog_with(vec![
        Resource::Service(plain.into()),
        Resource::Service(labelled.into()),
    ]);
    let cases = [
        (ServiceFilterMode::FilterIfLabelExists, true, false),
        (ServiceFilterMode::FilterIfLabelDoesNotExists, false, true),
    ];
    for (filter_mode, plain_routed, labelled_routed) in cases {
        let (snap, _) = c.build_snapshot(BuildOptions {
            filter_mode,
            version: 1,
            ..Default::default()
        });
        assert_eq!(
            snap.route(&frontend(1, 80)).is_some(),
            plain_routed,
            "{filter_mode:?}"
        );
        assert_eq!(
            snap.route(&frontend(2, 80)).is_some(),
            labelled_routed,
            "{filter_mode:?}"
        );
        // Filtered services stay in the snapshot for DNS.
        assert_eq!(snap.services.len(), 2);
    }
}

#[test]
fn headless_and_external_name_are_kept_but_not_proxied() {
    let mut headless = cluster_ip_service("ns", "db", ip(1), 5432);
    headless.kind = ServiceKind::Headless;
    let mut external = cluster_ip_service("ns", "ext", ip(2), 443);
    external.kind = ServiceKind::ExternalName {
        external_name: "example.org".into(),
    };
    let slice = endpoint_slice(&headless, &[(pod(9), "n1")], 5432);
    let c = catalog_with(vec![
        Resource::Service(headless.into()),
        Resource::Service(external.into()),
        Resource::EndpointSlice(slice.into()),
    ]);
    let (snap, _) = c.build_snapshot(BuildOptions::default());
    let db = snap.service(&ObjectKey::new("ns", "db")).expect("db");
    assert_eq!(db.proxy, ProxyDecision::Skipped(SkipReason::Headless));
    assert_eq!(db.endpoints[0].ip, pod(9));
    let ext = snap.service(&ObjectKey::new("ns", "ext")).expect("ext");
    assert_eq!(ext.proxy, ProxyDecision::Skipped(SkipReason::ExternalName));
    assert_eq!(snap.frontend_count(), 0);
}

#[test]
fn destination_rule_sets_policy_unless_client_ip_affinity_wins() {
    let svc = cluster_ip_service("ns", "web", ip(1), 80);
    let rule = DestinationRuleSpec {
        key: svc.key.clone(),
        policy: LbPolicy::Random,
        host: String::new(),
        subsets: Vec::new(),
    };
    let c = catalog_with(vec![
        Resource::Service(svc.clone().into()),
        Resource::DestinationRule(rule.into()),
    ]);
    let (snap, report) = c.build_snapshot(BuildOptions::default());
    assert_eq!(
        snap.service(&svc.key).expect("svc").lb_policy,
        LbPolicy::Random
    );
    assert!(report.warnings.is_empty());

    let mut sticky = svc.clone();
    sticky.session_affinity = Some(ClientIpAffinity {
        timeout: Duration::from_secs(60),
    });
    let mut c = c;
    c.upsert(SourceId::Manifests, Resource::Service(sticky.into()));
    let (snap, report) = c.build_snapshot(BuildOptions::default());
    assert_eq!(
        snap.service(&svc.key).expect("svc").lb_policy,
        LbPolicy::RoundRobin
    );
    assert_eq!(report.warnings.len(), 1);
    assert!(
        report.warnings[0].contains("DestinationRule ns/web ignored"),
        "{report:?}"
    );
}

#[test]
fn endpoint_slices_win_over_core_endpoints() {
    let svc = cluster_ip_service("ns", "web", ip(1), 80);
    let slice = endpoint_slice(&svc, &[(pod(1), "n1")], 8080);
    let mut endpoints = endpoint_slice(&svc, &[(pod(2), "n2")], 8080);
    endpoints.key = svc.key.clone();
    let c = catalog_with(vec![
        Resource::Service(svc.into()),
        Resource::EndpointSlice(slice.clone().into()),
        Resource::Endpoints(endpoints.clone().into()),
    ]);
    let (snap, _) = c.build_snapshot(BuildOptions::default());
    let (_, port) = snap.route(&frontend(1, 80)).expect("routed");
    assert_eq!(port.backends[0].addr.ip(), pod(1));

    let mut c = c;
    c.remove(&Resource::EndpointSlice(slice.into()).reference());
    let (snap, _) = c.build_snapshot(BuildOptions::default());
    let (_, port) = snap.route(&frontend(1, 80)).expect("routed");
    assert_eq!(port.backends[0].addr.ip(), pod(2));
}

#[test]
fn duplicate_endpoints_across_slices_are_merged() {
    let svc = cluster_ip_service("ns", "web", ip(1), 80);
    let a = endpoint_slice(&svc, &[(pod(1), "n1"), (pod(2), "n1")], 8080);
    let mut b = endpoint_slice(&svc, &[(pod(2), "n1"), (pod(3), "n1")], 8080);
    b.key.name = "web-other".into();
    let c = catalog_with(vec![
        Resource::Service(svc.into()),
        Resource::EndpointSlice(a.into()),
        Resource::EndpointSlice(b.into()),
    ]);
    let (snap, _) = c.build_snapshot(BuildOptions::default());
    let (service, port) = snap.route(&frontend(1, 80)).expect("routed");
    assert_eq!(port.backends.len(), 3);
    assert_eq!(service.endpoints.len(), 3);
}

#[test]
fn two_services_claiming_one_frontend_keep_the_first_and_warn() {
    let a = cluster_ip_service("ns", "a", ip(1), 80);
    let b = cluster_ip_service("ns", "b", ip(1), 80);
    let c = catalog_with(vec![
        Resource::Service(b.into()),
        Resource::Service(a.into()),
    ]);
    let (snap, report) = c.build_snapshot(BuildOptions::default());
    assert_eq!(
        snap.route(&frontend(1, 80))
            .expect("routed")
            .0
            .key()
            .name
            .as_ref(),
        "a"
    );
    assert_eq!(report.warnings.len(), 1);
}

#[test]
fn snapshot_serializes_to_json_with_readable_keys() {
    let svc = cluster_ip_service("ns", "web", ip(1), 80);
    let slice = endpoint_slice(&svc, &[(pod(1), "n1")], 8080);
    let c = catalog_with(vec![
        Resource::Service(svc.into()),
        Resource::EndpointSlice(slice.into()),
    ]);
    let (snap, _) = c.build_snapshot(BuildOptions {
        version: 3,
        ..Default::default()
    });
    let json = serde_json::to_value(&snap).expect("json");
    assert_eq!(json["version"], 3);
    let web = &json["services"]["ns/web"];
    assert_eq!(web["clusterIps"][0], "10.96.0.1");
    assert_eq!(web["proxy"], "proxied");
    assert_eq!(web["ports"][0]["backends"][0]["addr"], "192.0.2.1:8080");
}

#[test]
fn large_catalog_builds_every_frontend() {
    let c = large_catalog(1_000, 3);
    let (snap, report) = c.build_snapshot(BuildOptions::default());
    assert!(report.warnings.is_empty());
    assert_eq!(snap.frontend_count(), 1_000);
    assert!(
        snap.services
            .values()
            .all(|s| s.ports[0].backends.len() == 3)
    );
}

#[test]
fn the_kubernetes_service_goes_to_the_edge_hub_when_one_is_set() {
    let hub: std::net::SocketAddr = "169.254.2.1:10268".parse().unwrap();
    let api = cluster_ip_service("default", "kubernetes", ip(1), 443);
    let other = cluster_ip_service("other", "kubernetes", ip(2), 443);
    let items = vec![
        Resource::EndpointSlice(endpoint_slice(&api, &[(pod(100), "master")], 6443).into()),
        Resource::EndpointSlice(endpoint_slice(&other, &[(pod(101), "n1")], 6443).into()),
        Resource::Service(api.into()),
        Resource::Service(other.into()),
    ];
    let c = catalog_with(items);
    let backends = |options: BuildOptions, last: u8| -> Vec<String> {
        let (snap, _) = c.build_snapshot(options);
        let (_, port) = snap.route(&frontend(last, 443)).expect("routed");
        port.backends.iter().map(|b| b.addr.to_string()).collect()
    };
    let via_hub = BuildOptions {
        apiserver_via: Some(hub),
        ..Default::default()
    };
    assert_eq!(backends(via_hub, 1), ["169.254.2.1:10268"]);
    assert_eq!(
        backends(via_hub, 2),
        ["192.0.2.101:6443"],
        "only default/kubernetes"
    );
    assert_eq!(backends(BuildOptions::default(), 1), ["192.0.2.100:6443"]);
}

/// The Snapshot's Service shares its spec with the catalog but serializes as before, its key,
/// kind and affinity among its own fields (the agent's `/snapshot` debug page shows this).
#[test]
fn service_serializes_its_spec_fields_flat() {
    let mut svc = cluster_ip_service("ns", "web", ip(1), 80);
    svc.session_affinity = Some(ClientIpAffinity {
        timeout: Duration::from_secs(60),
    });
    let slice = endpoint_slice(&svc, &[(pod(1), "n1")], 8080);
    let key = svc.key.clone();
    let c = catalog_with(vec![
        Resource::Service(svc.into()),
        Resource::EndpointSlice(slice.into()),
    ]);
    let snap = c.build_snapshot(BuildOptions::default()).0;
    let json = serde_json::to_value(snap.service(&key).expect("built").as_ref()).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "key": {"namespace": "ns", "name": "web"},
            "type": "clusterIp",
            "clusterIps": ["10.96.0.1"],
            "proxy": "proxied",
            "lbPolicy": "roundRobin",
            "sessionAffinity": {"timeout": 60},
            "ports": [{"name": "http", "protocol": "TCP", "port": 80,
                       "backends": [{"addr": "192.0.2.1:8080", "nodeName": "n1"}]}],
            "endpoints": [{"ip": "192.0.2.1", "nodeName": "n1"}],
        })
    );
}
