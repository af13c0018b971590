//! The answer table: (Snapshot, question) → rcode and records, no sockets.

use std::net::IpAddr;

use edgemesh_model::fixtures::{cluster_ip_service, endpoint_slice, service, service_port as port};
use edgemesh_model::{
    BuildOptions, Catalog, EndpointSpec, Protocol, Resource, ServiceKind, Snapshot, SourceId,
};
use hickory_proto::op::ResponseCode::{self, NXDomain, NoError};
use hickory_proto::rr::{Name, RData, RecordType};

use super::*;
use crate::names::Target;
use crate::reverse::ReverseIndex;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// web: dual-stack ClusterIP with ports http/TCP and dns/UDP; db: headless with hostnames and one
/// unready endpoint; filtered: not proxied (label) but still in DNS; ext/alias/loop: ExternalName.
pub(crate) fn snapshot() -> Snapshot {
    let mut c = Catalog::new();
    let mut add = |r| c.upsert(SourceId::Manifests, r);
    let mut web = cluster_ip_service("ns", "web", ip("10.96.0.10"), 80);
    web.kind = ServiceKind::ClusterIp {
        cluster_ips: vec![ip("10.96.0.10"), ip("fd00::10")],
    };
    web.ports.push(port("dns", Protocol::Udp, 53));
    add(Resource::EndpointSlice(
        endpoint_slice(
            &web,
            &[(ip("10.244.0.1"), "n1"), (ip("10.244.0.2"), "n2")],
            8080,
        )
        .into(),
    ));
    add(Resource::Service(web.into()));
    let db = service(
        "ns",
        "db",
        ServiceKind::Headless,
        vec![port("pg", Protocol::Tcp, 5432)],
    );
    let mut slice = endpoint_slice(
        &db,
        &[(ip("10.244.1.1"), "n1"), (ip("10.244.1.2"), "n2")],
        5432,
    );
    let eps = &mut slice.subsets[0].endpoints;
    eps[0].hostname = Some("db-0".into());
    eps[1].hostname = Some("db-1".into());
    eps.push(EndpointSpec {
        ip: ip("10.244.1.3"),
        ready: false,
        node_name: None,
        hostname: Some("db-2".into()),
    });
    add(Resource::EndpointSlice(slice.into()));
    add(Resource::Service(db.into()));
    let mut filtered = cluster_ip_service("other", "filtered", ip("10.96.0.20"), 80);
    filtered.has_proxy_name_label = true;
    add(Resource::Service(filtered.into()));
    let ext = |name: &str, target: &str| {
        let kind = ServiceKind::ExternalName {
            external_name: target.into(),
        };
        Resource::Service(service("ns", name, kind, vec![]).into())
    };
    add(ext("ext", "example.com"));
    add(ext("alias", "web.ns.svc.cluster.local"));
    add(ext("loop", "loop.ns.svc.cluster.local"));
    c.build_snapshot(BuildOptions::default()).0
}

fn zone() -> Zone {
    Zone::new("cluster.local", 30).unwrap()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The rdata of the answers, as text, in order.
fn ask(q: &str, qtype: RecordType) -> (ResponseCode, Vec<String>) {
    let a = zone().answer(&snapshot(), &name(q), qtype);
    (
        a.rcode,
        a.answers.iter().map(|r| r.data.to_string()).collect(),
    )
}

#[test]
fn answer_table() {
    use RecordType::*;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases: &[(&str, RecordType, ResponseCode, &[&str])] = &[
        ("web.ns.svc.cluster.local.", A, NoError, &["10.96.0.10"]),
        ("WEB.Ns.svc.cluster.local.", A, NoError, &["10.96.0.10"]),
        ("web.ns.svc.cluster.local.", AAAA, NoError, &["fd00::10"]),
        ("web.ns.svc.cluster.local.", TXT, NoError, &[]),
        (
            "web.ns.svc.cluster.local.",
            ANY,
            NoError,
            &["10.96.0.10", "fd00::10"],
        ),
        (
            "filtered.other.svc.cluster.local.",
            A,
            NoError,
            &["10.96.0.20"],
        ),
        ("nope.ns.svc.cluster.local.", A, NXDomain, &[]),
        ("web.nope.svc.cluster.local.", A, NXDomain, &[]),
        (
            "db.ns.svc.cluster.local.",
            A,
            NoError,
            &["10.244.1.1", "10.244.1.2"],
        ),
        ("db.ns.svc.cluster.local.", AAAA, NoError, &[]),
        ("db-0.db.ns.svc.cluster.local.", A, NoError, &["10.244.1.1"]),
        ("db-2.db.ns.svc.cluster.local.", A, NXDomain, &[]),
        (
            "10-244-0-1.web.ns.svc.cluster.local.",
            A,
            NoError,
            &["10.244.0.1"],
        ),
        (
            "_http._tcp.web.ns.svc.cluster.local.",
            SRV,
            NoError,
            &["0 100 80 web.ns.svc.cluster.local."],
        ),
        (
            "_dns._udp.web.ns.svc.cluster.local.",
            SRV,
            NoError,
            &["0 100 53 web.ns.svc.cluster.local."],
        ),
        ("_http._udp.web.ns.svc.cluster.local.", SRV, NXDomain, &[]),
        ("_http._tcp.web.ns.svc.cluster.local.", A, NoError, &[]),
        (
            "_pg._tcp.db.ns.svc.cluster.local.",
            SRV,
            NoError,
            &[
                "0 100 5432 db-0.db.ns.svc.cluster.local.",
                "0 100 5432 db-1.db.ns.svc.cluster.local.",
            ],
        ),
        (
            "ext.ns.svc.cluster.local.",
            CNAME,
            NoError,
            &["example.com."],
        ),
        (
            "alias.ns.svc.cluster.local.",
            A,
            NoError,
            &["web.ns.svc.cluster.local.", "10.96.0.10"],
        ),
        ("ns.svc.cluster.local.", A, NoError, &[]),
        ("empty.svc.cluster.local.", A, NXDomain, &[]),
        ("svc.cluster.local.", A, NoError, &[]),
        ("cluster.local.", A, NoError, &[]),
        ("x.cluster.local.", A, NXDomain, &[]),
        ("10-1-2-3.ns.pod.cluster.local.", A, NoError, &["10.1.2.3"]),
        ("web.ns.pod.cluster.local.", A, NXDomain, &[]),
    ];
    for (q, qtype, rcode, answers) in cases {
        assert_eq!(ask(q, *qtype), (*rcode, s(answers)), "{q} {qtype}");
    }
}

#[test]
fn negative_answers_carry_the_soa_and_positive_ones_the_ttl() {
    let z = zone();
    let nx = z.answer(
        &snapshot(),
        &name("nope.ns.svc.cluster.local."),
        RecordType::A,
    );
    assert!(matches!(nx.authorities[0].data, RData::SOA(_)));
    let nodata = z.answer(
        &snapshot(),
        &name("web.ns.svc.cluster.local."),
        RecordType::MX,
    );
    assert_eq!((nodata.rcode, nodata.authorities.len()), (NoError, 1));
    let ok = z.answer(
        &snapshot(),
        &name("web.ns.svc.cluster.local."),
        RecordType::A,
    );
    assert!(ok.authorities.is_empty());
    assert_eq!(ok.answers[0].ttl, 30);
}

#[test]
fn srv_carries_glue_addresses() {
    let a = zone().answer(
        &snapshot(),
        &name("_pg._tcp.db.ns.svc.cluster.local."),
        RecordType::SRV,
    );
    let glue: Vec<_> = a
        .additionals
        .iter()
        .map(|r| (r.name.to_string(), r.data.to_string()))
        .collect();
    assert_eq!(
        glue,
        vec![
            ("db-0.db.ns.svc.cluster.local.".into(), "10.244.1.1".into()),
            ("db-1.db.ns.svc.cluster.local.".into(), "10.244.1.2".into())
        ]
    );
}

#[test]
fn external_name_outside_the_zone_asks_the_caller_to_chase() {
    let a = zone().answer(
        &snapshot(),
        &name("ext.ns.svc.cluster.local."),
        RecordType::A,
    );
    assert_eq!(a.chase, Some(name("example.com.")));
    assert_eq!(a.answers.len(), 1);
    assert!(a.authorities.is_empty());
}

#[test]
fn external_name_loops_are_bounded() {
    let a = zone().answer(
        &snapshot(),
        &name("loop.ns.svc.cluster.local."),
        RecordType::A,
    );
    assert_eq!(a.answers.len(), MAX_CNAME_CHAIN);
    assert!(
        a.answers
            .iter()
            .all(|r| r.record_type() == RecordType::CNAME)
    );
}

#[test]
fn custom_cluster_domain() {
    let z = Zone::new("edge.example", 5).unwrap();
    let a = z.answer(
        &snapshot(),
        &name("web.ns.svc.edge.example."),
        RecordType::A,
    );
    assert_eq!(a.answers[0].data.to_string(), "10.96.0.10");
    assert_eq!(a.answers[0].ttl, 5);
    assert_eq!(
        z.classify(&name("web.ns.svc.cluster.local.")),
        Target::Elsewhere
    );
}

#[test]
fn ptr_for_cluster_ips_and_endpoints() {
    let z = zone();
    let index = ReverseIndex::build(&snapshot());
    let ptr = |ip_s: &str| {
        let targets = index.names(&z, ip(ip_s));
        z.answer_ptr(&name("x.in-addr.arpa."), targets, RecordType::PTR)
            .map(|a| {
                a.answers
                    .iter()
                    .map(|r| r.data.to_string())
                    .collect::<Vec<_>>()
            })
    };
    assert_eq!(
        ptr("10.96.0.10"),
        Some(vec!["web.ns.svc.cluster.local.".into()])
    );
    assert_eq!(
        ptr("fd00::10"),
        Some(vec!["web.ns.svc.cluster.local.".into()])
    );
    assert_eq!(
        ptr("10.244.1.1"),
        Some(vec!["db-0.db.ns.svc.cluster.local.".into()])
    );
    assert_eq!(
        ptr("10.244.0.2"),
        Some(vec!["10-244-0-2.web.ns.svc.cluster.local.".into()])
    );
    assert_eq!(ptr("192.0.2.1"), None);
}

#[test]
fn rejects_bad_domains() {
    assert!(Zone::new(".", 30).is_err());
    assert!(Zone::new("a..b", 30).is_err());
    assert_eq!(
        Zone::new("Cluster.Local", 30).unwrap().domain(),
        &name("cluster.local.")
    );
}
