use std::collections::BTreeMap;
use std::sync::Arc;

use edgemesh_model::ingress::*;
use edgemesh_model::{BuildOptions, Catalog, Resource, SourceId};

use super::*;

fn server(
    port: u16,
    protocol: ServerProtocol,
    hosts: &[&str],
    tls: Option<ServerTls>,
) -> ServerSpec {
    ServerSpec {
        port,
        port_name: format!("p{port}"),
        protocol,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        tls,
    }
}

fn gateway(ns: &str, name: &str, servers: Vec<ServerSpec>) -> Resource {
    Resource::Gateway(
        GatewaySpec {
            key: ObjectKey::new(ns, name),
            selector: BTreeMap::from([("kubeedge".into(), "edgemesh-gateway".into())]),
            servers,
        }
        .into(),
    )
}

fn route_to(host: &str) -> Vec<DestinationSpec> {
    vec![DestinationSpec {
        host: host.into(),
        port: Some(80),
        subset: None,
        weight: 100,
    }]
}

fn vs(ns: &str, name: &str, hosts: &[&str], gateways: &[&str]) -> VirtualServiceSpec {
    VirtualServiceSpec {
        key: ObjectKey::new(ns, name),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        gateways: gateways.iter().map(|h| h.to_string()).collect(),
        http: vec![HttpRouteSpec {
            route: route_to("web"),
            ..HttpRouteSpec::default()
        }],
        tcp: vec![],
        tls: vec![],
    }
}

fn compile(resources: Vec<Resource>) -> RouteTable {
    let mut catalog = Catalog::new();
    for r in resources {
        catalog.upsert(SourceId::Manifests, r);
    }
    let (snapshot, _) = catalog.build_snapshot(BuildOptions::default());
    RouteTable::compile(&snapshot, &Identity::edgemesh_default())
}

#[test]
fn gateways_for_other_workloads_open_nothing() {
    let mut other = GatewaySpec {
        key: ObjectKey::new("default", "istio"),
        selector: BTreeMap::from([("istio".into(), "ingressgateway".into())]),
        servers: vec![server(80, ServerProtocol::Http, &["*"], None)],
    };
    let table = compile(vec![Resource::Gateway(other.clone().into())]);
    assert!(table.ports.is_empty());
    other.selector.clear();
    let table = compile(vec![Resource::Gateway(other.into())]);
    assert!(
        table.ports.contains_key(&80),
        "an empty selector selects every gateway"
    );
}

#[test]
fn a_port_served_two_ways_keeps_the_first_and_names_the_second() {
    let table = compile(vec![
        gateway(
            "a",
            "http",
            vec![server(8080, ServerProtocol::Http, &["*"], None)],
        ),
        gateway(
            "b",
            "tcp",
            vec![server(8080, ServerProtocol::Tcp, &["*"], None)],
        ),
    ]);
    assert!(matches!(table.ports[&8080].mode, PortMode::Http { .. }));
    assert_eq!(table.problems.len(), 1, "{:?}", table.problems);
    assert_eq!(table.problems[0].object, "Gateway b/tcp");
    assert!(
        table.problems[0]
            .message
            .contains("conflicts with Gateway a/http")
    );
}

#[test]
fn a_missing_secret_leaves_its_server_out() {
    let tls = ServerTls {
        mode: TlsMode::Simple,
        credential_name: Some("gw-secret".into()),
        min_version: None,
        max_version: None,
        cipher_suites: vec![],
        https_redirect: false,
    };
    let table = compile(vec![gateway(
        "default",
        "gw",
        vec![
            server(443, ServerProtocol::Https, &["*"], Some(tls)),
            server(80, ServerProtocol::Http, &["*"], None),
        ],
    )]);
    assert!(!table.ports.contains_key(&443));
    assert!(
        table.ports.contains_key(&80),
        "the other server still opens"
    );
    assert_eq!(
        table.problems[0].message,
        "server on port 443: Secret default/gw-secret (tls.credentialName) not found"
    );
}

#[test]
fn virtual_services_bind_to_the_gateways_and_namespaces_they_may() {
    let table = compile(vec![
        gateway(
            "gw",
            "public",
            vec![server(80, ServerProtocol::Http, &["./*", "team/*"], None)],
        ),
        Resource::VirtualService(Arc::new(vs("gw", "own", &["*"], &["public"]))),
        Resource::VirtualService(Arc::new(vs("team", "allowed", &["a.com"], &["gw/public"]))),
        Resource::VirtualService(Arc::new(vs("other", "refused", &["*"], &["gw/public"]))),
        Resource::VirtualService(Arc::new(vs("gw", "mesh-only", &["*"], &["mesh"]))),
        Resource::VirtualService(Arc::new(vs("gw", "no-gateways", &["*"], &[]))),
    ]);
    let names: Vec<&str> = table.ports[&80]
        .http
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["gw/own#0", "team/allowed#0"]);
}

#[test]
fn tls_routes_need_sni_hosts_and_route_by_them() {
    let passthrough = ServerTls {
        mode: TlsMode::Passthrough,
        credential_name: None,
        min_version: None,
        max_version: None,
        cipher_suites: vec![],
        https_redirect: false,
    };
    let mut by_sni = vs("default", "sni", &["*.example.com"], &["gw"]);
    by_sni.http.clear();
    by_sni.tls = vec![L4RouteSpec {
        matches: vec![L4MatchSpec {
            port: Some(443),
            sni_hosts: vec!["a.example.com".into()],
            gateways: vec![],
        }],
        route: route_to("a"),
    }];
    let mut no_sni = by_sni.clone();
    no_sni.key.name = "no-sni".into();
    no_sni.tls[0].matches[0].sni_hosts.clear();
    let table = compile(vec![
        gateway(
            "default",
            "gw",
            vec![server(443, ServerProtocol::Tls, &["*"], Some(passthrough))],
        ),
        Resource::VirtualService(Arc::new(by_sni)),
        Resource::VirtualService(Arc::new(no_sni)),
    ]);
    let port = &table.ports[&443];
    assert!(matches!(port.mode, PortMode::Passthrough));
    assert!(port.route_l4(Some("a.example.com")).is_some());
    assert!(port.route_l4(Some("b.example.com")).is_none());
    assert!(port.route_l4(None).is_none());
    assert_eq!(table.problems[0].object, "VirtualService default/no-sni");
}

#[test]
fn destination_hosts_name_services() {
    assert_eq!(service_of("web", "ns"), Some(ObjectKey::new("ns", "web")));
    assert_eq!(
        service_of("web.other", "ns"),
        Some(ObjectKey::new("other", "web"))
    );
    assert_eq!(
        service_of("web.other.svc.cluster.local", "ns"),
        Some(ObjectKey::new("other", "web"))
    );
    assert_eq!(service_of("www.example.com.au", "ns"), None);
}

#[test]
fn weights_pick_in_proportion() {
    let specs = vec![
        DestinationSpec {
            host: "a".into(),
            port: None,
            subset: None,
            weight: 3,
        },
        DestinationSpec {
            host: "b".into(),
            port: None,
            subset: None,
            weight: 1,
        },
    ];
    let d = Destinations::compile(&specs, "ns", &Default::default()).unwrap();
    let picks: Vec<&str> = (0..4)
        .map(|roll| d.pick(roll).service.name.as_ref())
        .collect();
    assert_eq!(picks, ["a", "a", "a", "b"]);
    let zero = vec![
        DestinationSpec {
            host: "a".into(),
            port: None,
            subset: None,
            weight: 0,
        },
        DestinationSpec {
            host: "b".into(),
            port: None,
            subset: None,
            weight: 0,
        },
    ];
    assert!(Destinations::compile(&zero, "ns", &Default::default()).is_err());
}

/// The name of the route `host` on `port` reaches with path `/`, if any.
fn route_for(table: &RouteTable, port: u16, host: &str) -> Option<String> {
    let headers = http::HeaderMap::new();
    let view = RequestView {
        path: "/",
        query: None,
        method: "GET",
        authority: host,
        headers: &headers,
        port,
    };
    table.ports[&port]
        .route_http(host, &view)
        .map(|(route, _)| route.name.clone())
}

#[test]
fn a_match_with_gateways_holds_only_on_their_servers() {
    let only_on = |gateways: &[&str]| HttpMatchSpec {
        gateways: gateways.iter().map(|g| g.to_string()).collect(),
        ..HttpMatchSpec::default()
    };
    let mut restricted = vs("default", "restricted", &["*"], &["g1", "default/g2"]);
    restricted.http[0].name = Some("g1-only".into());
    restricted.http[0].matches = vec![only_on(&["g1"])];
    // `mesh` (sidecars) and a Gateway the VirtualService is not bound to never hold here.
    let mut elsewhere = restricted.http[0].clone();
    elsewhere.name = Some("elsewhere".into());
    elsewhere.matches = vec![only_on(&["mesh"]), only_on(&["g3"])];
    let mut fallback = restricted.http[0].clone();
    fallback.name = Some("fallback".into());
    fallback.matches.clear();
    restricted.http = vec![elsewhere, restricted.http[0].clone(), fallback];
    let table = compile(vec![
        gateway(
            "default",
            "g1",
            vec![
                server(80, ServerProtocol::Http, &["a.com"], None),
                server(81, ServerProtocol::Http, &["*"], None),
            ],
        ),
        gateway(
            "default",
            "g2",
            vec![server(80, ServerProtocol::Http, &["b.com"], None)],
        ),
        gateway(
            "default",
            "g3",
            vec![server(82, ServerProtocol::Http, &["*"], None)],
        ),
        Resource::VirtualService(Arc::new(restricted)),
    ]);
    assert!(table.problems.is_empty(), "{:?}", table.problems);
    let g1_only = Some("default/restricted/g1-only".to_string());
    let fallback = Some("default/restricted/fallback".to_string());
    assert_eq!(route_for(&table, 80, "a.com"), g1_only, "g1's server");
    assert_eq!(route_for(&table, 81, "x.org"), g1_only, "g1's other port");
    // Port 80 is shared with g2: b.com is g2's server there.
    assert_eq!(route_for(&table, 80, "b.com"), fallback, "g2's server");
    assert!(table.ports[&82].http.is_empty(), "g3 is not bound");
}

#[test]
fn gateway_references_resolve_as_istio_does() {
    let key = |ns: &str, name: &str| ObjectKey::new(ns, name);
    assert_eq!(gateway_ref("gw", "ns"), key("ns", "gw"));
    assert_eq!(gateway_ref("other/gw", "ns"), key("other", "gw"));
    assert_eq!(gateway_ref("./gw", "ns"), key("ns", "gw"));
    assert_eq!(gateway_ref("gw.other", "ns"), key("other", "gw"));
    assert_eq!(
        gateway_ref("gw.other.svc.cluster.local", "ns"),
        key("other", "gw")
    );
}

#[test]
fn an_unknown_retry_condition_leaves_the_route_out_and_names_it() {
    let mut flaky = vs("default", "flaky", &["*"], &["gw"]);
    flaky.http[0].retries = Some(RetriesSpec {
        attempts: 2,
        per_try_timeout: None,
        retry_on: Some("5xx,on-tuesdays".into()),
    });
    let table = compile(vec![
        gateway(
            "default",
            "gw",
            vec![server(80, ServerProtocol::Http, &["*"], None)],
        ),
        Resource::VirtualService(Arc::new(flaky)),
    ]);
    assert!(table.ports[&80].http.is_empty());
    assert_eq!(
        table.problems,
        [Problem {
            object: "VirtualService default/flaky".into(),
            message: "http[0]: retries.retryOn: \"on-tuesdays\" is not a supported retry condition"
                .into(),
        }]
    );
}

#[test]
fn tcp_and_tls_matches_with_gateways_hold_only_on_their_servers() {
    let l4 = |gateways: &[&str], sni: &[&str], to: &str| L4RouteSpec {
        matches: vec![L4MatchSpec {
            port: None,
            sni_hosts: sni.iter().map(|h| h.to_string()).collect(),
            gateways: gateways.iter().map(|g| g.to_string()).collect(),
        }],
        route: route_to(to),
    };
    let mut both = vs("default", "both", &["*"], &["g1", "g2"]);
    both.http.clear();
    both.tcp = vec![l4(&["g1"], &[], "one"), l4(&[], &[], "any")];
    both.tls = vec![
        l4(&["g2"], &["*.example.com"], "two"),
        l4(&[], &["*.example.com"], "any"),
    ];
    let passthrough = ServerTls {
        mode: TlsMode::Passthrough,
        credential_name: None,
        min_version: None,
        max_version: None,
        cipher_suites: vec![],
        https_redirect: false,
    };
    let table = compile(vec![
        gateway(
            "default",
            "g1",
            vec![
                server(9000, ServerProtocol::Tcp, &["*"], None),
                server(
                    443,
                    ServerProtocol::Tls,
                    &["a.example.com"],
                    Some(passthrough.clone()),
                ),
            ],
        ),
        gateway(
            "default",
            "g2",
            vec![
                server(9001, ServerProtocol::Tcp, &["*"], None),
                server(
                    443,
                    ServerProtocol::Tls,
                    &["b.example.com"],
                    Some(passthrough),
                ),
            ],
        ),
        Resource::VirtualService(Arc::new(both)),
    ]);
    assert!(table.problems.is_empty(), "{:?}", table.problems);
    let l4_for = |port: u16, sni: Option<&str>| {
        table.ports[&port]
            .route_l4(sni)
            .map(|r| r.destinations.targets[0].service.name.clone())
    };
    assert_eq!(l4_for(9000, None).as_deref(), Some("one"));
    assert_eq!(l4_for(9001, None).as_deref(), Some("any"));
    assert_eq!(l4_for(443, Some("a.example.com")).as_deref(), Some("any"));
    assert_eq!(l4_for(443, Some("b.example.com")).as_deref(), Some("two"));
}
