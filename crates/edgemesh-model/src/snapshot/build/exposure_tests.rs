//! Node ports and external IPs: which frontends a service gets, how a connection's original
//! destination resolves to one, and when only this node's endpoints may serve it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::catalog::{Catalog, Resource, SourceId};
use crate::fixtures::{cluster_ip_service, endpoint_slice, exposed};
use crate::spec::*;
use crate::{BuildOptions, Frontend, Snapshot};

const CLUSTER_IP: [u8; 4] = [10, 96, 0, 1];
const EXTERNAL_IP: [u8; 4] = [198, 51, 100, 10];
const NODE_IP: [u8; 4] = [192, 0, 2, 1];

fn tcp(ip: impl Into<IpAddr>, port: u16) -> Frontend {
    Frontend {
        ip: ip.into(),
        port,
        protocol: Protocol::Tcp,
    }
}

fn exposure(policy: ExternalTrafficPolicy) -> Exposure {
    Exposure {
        node_ports: vec![NodePortSpec {
            protocol: Protocol::Tcp,
            port: 80,
            node_port: 30080,
        }],
        external_ips: vec![EXTERNAL_IP.into()],
        external_traffic_policy: policy,
    }
}

fn build(services: Vec<ServiceSpec>, filter_mode: ServiceFilterMode) -> Snapshot {
    let mut catalog = Catalog::new();
    for svc in services {
        let slice = endpoint_slice(&svc, &[(IpAddr::from([192, 0, 2, 11]), "n1")], 8080);
        catalog.upsert(SourceId::Manifests, Resource::EndpointSlice(slice.into()));
        catalog.upsert(SourceId::Manifests, Resource::Service(svc.into()));
    }
    let options = BuildOptions {
        filter_mode,
        ..Default::default()
    };
    catalog.build_snapshot(options).0
}

fn web(policy: ExternalTrafficPolicy) -> ServiceSpec {
    exposed(
        cluster_ip_service("ns", "web", CLUSTER_IP.into(), 80),
        exposure(policy),
    )
}

#[test]
fn a_node_port_service_gets_cluster_ip_external_ip_and_node_port_frontends() {
    let snap = build(
        vec![web(ExternalTrafficPolicy::Cluster)],
        ServiceFilterMode::default(),
    );
    let mut frontends: Vec<Frontend> = snap.proxied_frontends().map(|(f, _)| f).collect();
    frontends.sort();
    let node_port = Frontend::node_port(CLUSTER_IP.into(), 30080, Protocol::Tcp);
    assert_eq!(
        frontends,
        vec![node_port, tcp(CLUSTER_IP, 80), tcp(EXTERNAL_IP, 80)]
    );
    assert_eq!(node_port.ip, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert!(node_port.is_node_port());
    for frontend in &frontends {
        let (service, port) = snap.route(frontend).expect("routed");
        assert_eq!((&*service.key().name, port.port), ("web", 80));
    }
}

#[test]
fn original_destinations_resolve_to_their_frontend() {
    let snap = build(
        vec![web(ExternalTrafficPolicy::Cluster)],
        ServiceFilterMode::default(),
    );
    let node_port = Frontend::node_port(CLUSTER_IP.into(), 30080, Protocol::Tcp);
    let udp_node_port = Frontend {
        protocol: Protocol::Udp,
        ..tcp(NODE_IP, 30080)
    };
    let table: [(Frontend, Option<Frontend>); 6] = [
        (tcp(CLUSTER_IP, 80), Some(tcp(CLUSTER_IP, 80))),
        (tcp(EXTERNAL_IP, 80), Some(tcp(EXTERNAL_IP, 80))),
        // Any local address at the node port (the kernel only redirects local ones).
        (tcp(NODE_IP, 30080), Some(node_port)),
        (tcp([10, 0, 0, 7], 30080), Some(node_port)),
        // The node port is TCP only; an IPv6 destination has no IPv6 ClusterIP to serve it.
        (udp_node_port, None),
        (tcp(Ipv6Addr::LOCALHOST, 30080), None),
    ];
    for (dst, want) in table {
        assert_eq!(snap.resolve(&dst), want, "{dst:?}");
    }
}

#[test]
fn cluster_ips_and_external_ips_win_over_node_ports() {
    // Another service's ClusterIP at a port that equals web's node port.
    let other = cluster_ip_service("ns", "other", [10, 96, 0, 2].into(), 30080);
    let snap = build(
        vec![web(ExternalTrafficPolicy::Cluster), other],
        ServiceFilterMode::default(),
    );
    let dst = tcp([10, 96, 0, 2], 30080);
    assert_eq!(snap.resolve(&dst), Some(dst));
    assert_eq!(
        snap.route(&dst).expect("routed").0.key().name.as_ref(),
        "other"
    );
}

#[test]
fn filtered_services_get_no_node_port_or_external_ip() {
    let mut labelled = web(ExternalTrafficPolicy::Cluster);
    labelled.has_proxy_name_label = true;
    let snap = build(vec![labelled], ServiceFilterMode::FilterIfLabelExists);
    assert_eq!(snap.frontend_count(), 0);
    assert_eq!(snap.resolve(&tcp(NODE_IP, 30080)), None);
    assert_eq!(snap.resolve(&tcp(EXTERNAL_IP, 80)), None);
}

#[test]
fn two_services_claiming_one_node_port_keep_the_first_with_a_warning() {
    let a = web(ExternalTrafficPolicy::Cluster);
    let mut b = exposed(
        cluster_ip_service("ns", "web2", [10, 96, 0, 3].into(), 80),
        exposure(ExternalTrafficPolicy::Cluster),
    );
    if let ServiceKind::Exposed { exposure, .. } = &mut b.kind {
        exposure.external_ips.clear();
    }
    let mut catalog = Catalog::new();
    catalog.upsert(SourceId::Manifests, Resource::Service(a.into()));
    catalog.upsert(SourceId::Manifests, Resource::Service(b.into()));
    let (snap, report) = catalog.build_snapshot(BuildOptions::default());
    let node_port = Frontend::node_port(CLUSTER_IP.into(), 30080, Protocol::Tcp);
    assert_eq!(
        snap.route(&node_port)
            .expect("routed")
            .0
            .key()
            .name
            .as_ref(),
        "web"
    );
    assert_eq!(
        report.warnings,
        vec!["Service ns/web and Service ns/web2 both claim node port 30080/TCP; keeping ns/web"]
    );
}

#[test]
fn local_policy_applies_to_node_port_and_external_ip_traffic_only() {
    let node_port = Frontend::node_port(CLUSTER_IP.into(), 30080, Protocol::Tcp);
    let table = [
        (ExternalTrafficPolicy::Local, node_port, true),
        (ExternalTrafficPolicy::Local, tcp(EXTERNAL_IP, 80), true),
        (ExternalTrafficPolicy::Local, tcp(CLUSTER_IP, 80), false),
        (ExternalTrafficPolicy::Cluster, node_port, false),
        (ExternalTrafficPolicy::Cluster, tcp(EXTERNAL_IP, 80), false),
    ];
    for (policy, frontend, want) in table {
        let snap = build(vec![web(policy)], ServiceFilterMode::default());
        let (service, _) = snap.route(&frontend).expect("routed");
        assert_eq!(
            service.local_endpoints_only(&frontend),
            want,
            "{policy:?} {frontend:?}"
        );
    }
}

#[test]
fn dual_stack_node_ports_listen_on_both_families() {
    let mut svc = web(ExternalTrafficPolicy::Cluster);
    if let ServiceKind::Exposed { cluster_ips, .. } = &mut svc.kind {
        cluster_ips.push("fd00::1".parse().expect("ipv6"));
    }
    let snap = build(vec![svc], ServiceFilterMode::default());
    let v6 = tcp("2001:db8::1".parse::<IpAddr>().expect("ipv6"), 30080);
    assert_eq!(
        snap.resolve(&v6),
        Some(Frontend::node_port(v6.ip, 30080, Protocol::Tcp))
    );
}

#[test]
fn debug_snapshot_shows_the_exposure_in_kubernetes_spelling() {
    let snap = build(
        vec![web(ExternalTrafficPolicy::Local)],
        ServiceFilterMode::default(),
    );
    let json = serde_json::to_value(&snap).expect("serializes");
    let web = &json["services"]["ns/web"];
    assert_eq!(web["type"], "exposed");
    assert_eq!(web["clusterIps"][0], "10.96.0.1");
    assert_eq!(
        web["exposure"],
        serde_json::json!({
            "nodePorts": [{"protocol": "TCP", "port": 80, "nodePort": 30080}],
            "externalIps": ["198.51.100.10"],
            "externalTrafficPolicy": "Local",
        })
    );
}
