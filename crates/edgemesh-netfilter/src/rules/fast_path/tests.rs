use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use edgemesh_model::{
    ClientIpAffinity, HashKey, ObjectKey, ProxyDecision, ServiceKind, ServiceSpec, ThinStr,
};

use super::*;

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10));
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xa));

fn backend(addr: &str, node: Option<&str>) -> Backend {
    Backend {
        addr: addr.parse().unwrap(),
        node_name: node.map(ThinStr::from),
    }
}

fn service(policy: LbPolicy, affinity: bool) -> Service {
    Service {
        spec: Arc::new(ServiceSpec {
            key: ObjectKey::new("default", "web"),
            kind: ServiceKind::ClusterIp {
                cluster_ips: vec![VIP],
            },
            ports: Vec::new(),
            has_proxy_name_label: false,
            session_affinity: affinity.then_some(ClientIpAffinity {
                timeout: Duration::from_secs(10),
            }),
        }),
        proxy: ProxyDecision::Proxied,
        lb_policy: policy,
        ports: Vec::new(),
        endpoints: Vec::new(),
    }
}

fn port(backends: Vec<Backend>) -> ServicePort {
    ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
        app_protocol: None,
        backends: backends.into(),
    }
}

fn frontend(ip: IpAddr, protocol: Protocol) -> Frontend {
    Frontend {
        ip,
        port: 80,
        protocol,
    }
}

/// Name, frontend, service, its backends, the expected kernel spread (`None`: the proxy).
type Case = (
    &'static str,
    Frontend,
    Service,
    Vec<Backend>,
    Option<Spread>,
);

#[test]
fn only_what_the_kernel_can_do_alone_takes_the_fast_path() {
    let local = FastPathOptions {
        local_node: Some(Arc::from("n1")),
    };
    let here = || {
        vec![
            backend("192.0.2.11:8080", Some("n1")),
            backend("192.0.2.12:8080", None),
        ]
    };
    let tcp = frontend(VIP, Protocol::Tcp);
    let rr = service(LbPolicy::RoundRobin, false);
    let hash = LbPolicy::ConsistentHash(HashKey::SourceIp);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("round robin, local and unnamed backends", tcp, rr.clone(), here(), Some(Spread::RoundRobin)),
        ("random", tcp, service(LbPolicy::Random, false), here(), Some(Spread::Random)),
        ("consistent hash needs the proxy", tcp, service(hash, false), here(), None),
        ("ClientIP affinity needs the proxy", tcp, service(LbPolicy::RoundRobin, true), here(), None),
        ("UDP stays with TPROXY", frontend(VIP, Protocol::Udp), rr.clone(), here(), None),
        ("no endpoints: the proxy refuses fast", tcp, rr.clone(), vec![], None),
        ("an endpoint on another node needs the tunnel", tcp, rr.clone(),
            vec![backend("192.0.2.11:8080", Some("n1")), backend("198.51.100.7:8080", Some("n2"))], None),
        ("a v6 frontend with v4 backends", frontend(VIP6, Protocol::Tcp), rr.clone(), here(), None),
    ];
    for (name, frontend, service, backends, want) in cases {
        let got = fast_route(&frontend, &service, &port(backends), &local);
        assert_eq!(got.map(|r| r.spread), want, "{name}");
    }
}

#[test]
fn a_fast_route_names_its_service_and_keeps_the_backend_order() {
    let route = fast_route(
        &frontend(VIP, Protocol::Tcp),
        &service(LbPolicy::RoundRobin, false),
        &port(vec![
            backend("192.0.2.12:8080", None),
            backend("192.0.2.11:8080", None),
        ]),
        &FastPathOptions::default(),
    )
    .unwrap();
    let addrs: Vec<String> = route.backends.iter().map(ToString::to_string).collect();
    assert_eq!(addrs, ["192.0.2.12:8080", "192.0.2.11:8080"]);
}

#[test]
fn without_a_node_name_only_unnamed_backends_are_local() {
    let route = fast_route(
        &frontend(VIP, Protocol::Tcp),
        &service(LbPolicy::RoundRobin, false),
        &port(vec![backend("192.0.2.11:8080", Some("n1"))]),
        &FastPathOptions::default(),
    );
    assert_eq!(route, None);
}
