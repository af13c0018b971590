//! Snapshots for tests, golden files and benchmarks (not used by the agent itself).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgemesh_model::Protocol::{Sctp, Tcp, Udp};
use edgemesh_model::fixtures::{
    cluster_ip_service, endpoint_slice, exposed, service, service_port as port,
};
use edgemesh_model::{
    BuildOptions, Catalog, DestinationRuleSpec, Exposure, ExternalTrafficPolicy, HashKey, LbPolicy,
    NodePortSpec, Protocol, Resource, ServiceKind, ServiceSpec, Snapshot, SourceId,
};

/// `10.96.0.10` TCP 80 of `default/web`.
pub const WEB_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10));
/// `fd00:10:96::a`, the IPv6 ClusterIP of `default/web`.
pub const WEB_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0xa));
/// `kube-system/dns`: UDP and TCP 53.
pub const DNS_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 53));
/// `monitoring/node-exporter`, carrying the service-proxy-name label.
pub const LABELLED_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 20));
/// `default/sctp`, an SCTP service.
pub const SCTP_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 30));

/// `default/shop`: ClusterIP `10.96.0.40`, node ports TCP 30080 and UDP 30053, external IP
/// `198.51.100.10`.
pub const SHOP_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 40));
pub const SHOP_EXTERNAL_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10));
pub const SHOP_NODE_PORT_TCP: u16 = 30080;
pub const SHOP_NODE_PORT_UDP: u16 = 30053;
/// The node port of `monitoring/exporter-np`, which carries the service-proxy-name label.
pub const LABELLED_NODE_PORT: u16 = 30910;

fn node_port(protocol: Protocol, port: u16, node_port: u16) -> NodePortSpec {
    NodePortSpec {
        protocol,
        port,
        node_port,
    }
}

/// `default/shop` and the labelled `monitoring/exporter-np`: the node-port services of the
/// sample.
fn node_port_services() -> [ServiceSpec; 2] {
    let shop = ServiceKind::Exposed {
        cluster_ips: vec![SHOP_V4],
        exposure: Box::new(Exposure {
            node_ports: vec![
                node_port(Protocol::Tcp, 80, SHOP_NODE_PORT_TCP),
                node_port(Protocol::Udp, 53, SHOP_NODE_PORT_UDP),
            ],
            external_ips: vec![SHOP_EXTERNAL_V4],
            external_traffic_policy: ExternalTrafficPolicy::Cluster,
        }),
    };
    let shop = service_of(
        "default",
        "shop",
        shop,
        &[("http", Tcp, 80), ("dns", Udp, 53)],
    );
    let exporter = cluster_ip_service("monitoring", "exporter-np", LABELLED_V4, 9101);
    let mut exporter = exposed(
        exporter,
        Exposure {
            node_ports: vec![node_port(Protocol::Tcp, 9101, LABELLED_NODE_PORT)],
            ..Exposure::default()
        },
    );
    exporter.has_proxy_name_label = true;
    [shop, exporter]
}

/// A small cluster: a dual-stack web service, a DNS service (UDP+TCP), a labelled service, a
/// headless one, an ExternalName, an SCTP one, and the node-port services.
pub fn sample_snapshot() -> Snapshot {
    let web = ServiceKind::ClusterIp {
        cluster_ips: vec![WEB_V4, WEB_V6],
    };
    let dns = ServiceKind::ClusterIp {
        cluster_ips: vec![DNS_V4],
    };
    let sctp = ServiceKind::ClusterIp {
        cluster_ips: vec![SCTP_V4],
    };
    let external = ServiceKind::ExternalName {
        external_name: "example.com".into(),
    };
    let mut labelled = cluster_ip_service("monitoring", "node-exporter", LABELLED_V4, 9100);
    labelled.has_proxy_name_label = true;
    let services = [
        http_service("default", "web", web),
        service_of(
            "kube-system",
            "dns",
            dns,
            &[("dns", Udp, 53), ("dns-tcp", Tcp, 53)],
        ),
        service_of("default", "sctp", sctp, &[("s", Sctp, 9999)]),
        http_service("default", "headless", ServiceKind::Headless),
        http_service("default", "ext", external),
        labelled,
    ];
    snapshot_of(services.into_iter().chain(node_port_services()))
}

/// A service of `kind` with one port, `http` TCP 80.
fn http_service(namespace: &str, name: &str, kind: ServiceKind) -> ServiceSpec {
    service_of(namespace, name, kind, &[("http", Tcp, 80)])
}

/// A service of `kind` with `ports`, each `(name, protocol, number)`.
fn service_of(
    namespace: &str,
    name: &str,
    kind: ServiceKind,
    ports: &[(&str, Protocol, u16)],
) -> ServiceSpec {
    let ports = ports
        .iter()
        .map(|&(name, protocol, number)| port(name, protocol, number))
        .collect();
    service(namespace, name, kind, ports)
}

/// `count` ClusterIP services (10.96.0.0 upwards), one TCP port 80 each.
pub fn many_services(count: u32) -> Snapshot {
    let services = (0..count).map(|i| {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + i));
        cluster_ip_service("bench", &format!("svc-{i}"), ip, 80)
    });
    snapshot_of(services)
}

/// `10.96.1.1`: `fast/rr`, round robin over two endpoints of this node (`n1`).
pub const FAST_RR_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 1, 1));
/// `10.96.1.2`: `fast/random`, a DestinationRule `RANDOM`, one local endpoint, one unnamed.
pub const FAST_RANDOM_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 1, 2));
/// `10.96.1.3`: `fast/hash`, consistent hash by source IP: the proxy's.
pub const HASH_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 1, 3));
/// `10.96.1.4`: `fast/remote`, one endpoint on node `n2`: the proxy's (tunnel).
pub const REMOTE_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 1, 4));
/// `10.96.1.5`: `fast/single`, one endpoint of this node.
pub const SINGLE_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 1, 5));

/// `10.96.1.6`: `fast/exposed`, one endpoint of this node, node port 30081, external IP
/// `198.51.100.16`, `externalTrafficPolicy: Local`.
pub const EXPOSED_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 1, 6));
pub const EXPOSED_EXTERNAL_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 16));

/// Services with endpoints and every policy, seen from node `n1` (the fast-path fixture).
pub fn policies_snapshot() -> Snapshot {
    let ip = |last| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
    let mut catalog = Catalog::new();
    let mut add = |name: &str, vip, endpoints: &[(IpAddr, &str)], policy: Option<LbPolicy>| {
        let svc = cluster_ip_service("fast", name, vip, 80);
        let slice = endpoint_slice(&svc, endpoints, 8080);
        if let Some(policy) = policy {
            let rule = DestinationRuleSpec {
                key: svc.key.clone(),
                policy,
                host: String::new(),
                subsets: Vec::new(),
            };
            catalog.upsert(SourceId::Manifests, Resource::DestinationRule(rule.into()));
        }
        catalog.upsert(SourceId::Manifests, Resource::Service(svc.into()));
        catalog.upsert(SourceId::Manifests, Resource::EndpointSlice(slice.into()));
    };
    add("rr", FAST_RR_V4, &[(ip(11), "n1"), (ip(12), "n1")], None);
    add(
        "random",
        FAST_RANDOM_V4,
        &[(ip(11), "n1"), (ip(13), "n1")],
        Some(LbPolicy::Random),
    );
    let hash = LbPolicy::ConsistentHash(HashKey::SourceIp);
    add(
        "hash",
        HASH_V4,
        &[(ip(11), "n1"), (ip(12), "n1")],
        Some(hash),
    );
    add("remote", REMOTE_V4, &[(ip(21), "n2")], None);
    add("single", SINGLE_V4, &[(ip(11), "n1")], None);
    // Round robin over this node's endpoints, reached by a node port and an external IP too:
    // the ClusterIP and the external IP are DNATed in the kernel, the node port is proxied.
    let exposed_svc = exposed(
        cluster_ip_service("fast", "exposed", EXPOSED_V4, 80),
        Exposure {
            node_ports: vec![node_port(Protocol::Tcp, 80, 30081)],
            external_ips: vec![EXPOSED_EXTERNAL_V4],
            external_traffic_policy: ExternalTrafficPolicy::Local,
        },
    );
    let slice = endpoint_slice(&exposed_svc, &[(ip(11), "n1")], 8080);
    catalog.upsert(SourceId::Manifests, Resource::Service(exposed_svc.into()));
    catalog.upsert(SourceId::Manifests, Resource::EndpointSlice(slice.into()));
    catalog.build_snapshot(BuildOptions::default()).0
}

fn snapshot_of(services: impl IntoIterator<Item = ServiceSpec>) -> Snapshot {
    let mut catalog = Catalog::new();
    for spec in services {
        catalog.upsert(SourceId::Manifests, Resource::Service(spec.into()));
    }
    catalog.build_snapshot(BuildOptions::default()).0
}

/// A small cluster seen from node `n1` that changes at random, one Service or endpoint at a
/// time: what the incremental nftables updates are tested against (the same sequence applied
/// incrementally and as full rewrites must leave the same table). Deterministic for a seed.
#[derive(Clone, Debug)]
pub struct ChangingCluster {
    rng: u64,
    /// By service number (its addresses and node port derive from it).
    services: BTreeMap<u8, Shape>,
}

#[derive(Clone, Debug)]
struct Shape {
    v6: bool,
    /// Last address byte and node of each endpoint.
    endpoints: Vec<(u8, &'static str)>,
    policy: Option<LbPolicy>,
    node_port: bool,
}

/// At most this many services and endpoints per service: small, so that changes often meet
/// (a group emptied, then refilled by another service).
const CHANGING_SERVICES: u8 = 12;
const CHANGING_ENDPOINTS: usize = 4;

impl ChangingCluster {
    /// Eight services of one to three endpoints, every fourth dual-stack's v6 twin.
    pub fn new(seed: u64) -> Self {
        let mut cluster = Self {
            rng: seed | 1,
            services: BTreeMap::new(),
        };
        for id in 0..8 {
            let shape = cluster.new_shape(id);
            cluster.services.insert(id, shape);
        }
        cluster
    }

    /// xorshift64: no dependency, same sequence everywhere.
    fn next(&mut self, below: usize) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % below as u64) as usize
    }

    fn new_shape(&mut self, id: u8) -> Shape {
        let endpoints = (0..1 + self.next(3)).map(|_| self.endpoint()).collect();
        Shape {
            v6: id % 4 == 3,
            endpoints,
            policy: None,
            node_port: false,
        }
    }

    fn endpoint(&mut self) -> (u8, &'static str) {
        let last = 10 + self.next(200) as u8;
        let node = if self.next(8) == 0 { "n2" } else { "n1" };
        (last, node)
    }

    /// One random change; says which, for a failure message.
    pub fn change(&mut self) -> String {
        let ids: Vec<u8> = self.services.keys().copied().collect();
        let absent = (0..CHANGING_SERVICES).find(|id| !self.services.contains_key(id));
        let id = match ids.len() {
            0 => 0,
            n => ids[self.next(n)],
        };
        let what = self.next(10);
        if (what == 0 || ids.is_empty())
            && let Some(id) = absent
        {
            let shape = self.new_shape(id);
            self.services.insert(id, shape);
            return format!("add service {id}");
        }
        if what == 1 {
            self.services.remove(&id);
            return format!("remove service {id}");
        }
        let endpoint = self.endpoint();
        let pick = self.next(CHANGING_ENDPOINTS);
        let policy = [
            None,
            Some(LbPolicy::Random),
            Some(LbPolicy::ConsistentHash(HashKey::SourceIp)),
        ][self.next(3)]
        .clone();
        let Some(shape) = self.services.get_mut(&id) else {
            return "nothing".into();
        };
        let slot = pick % shape.endpoints.len().max(1);
        match what {
            2 if shape.endpoints.len() < CHANGING_ENDPOINTS => {
                shape.endpoints.push(endpoint);
                format!("service {id}: one endpoint more")
            }
            3 if !shape.endpoints.is_empty() => {
                shape.endpoints.remove(slot);
                format!("service {id}: one endpoint less")
            }
            4 => {
                shape.policy = policy;
                format!("service {id}: policy {:?}", shape.policy)
            }
            5 => {
                shape.node_port = !shape.node_port;
                format!("service {id}: node port {}", shape.node_port)
            }
            _ if !shape.endpoints.is_empty() => {
                shape.endpoints[slot] = endpoint;
                format!("service {id}: endpoint {slot} now {endpoint:?}")
            }
            _ => {
                shape.endpoints.push(endpoint);
                format!("service {id}: first endpoint")
            }
        }
    }

    /// The cluster as the agent's Snapshot.
    pub fn snapshot(&self) -> Snapshot {
        let mut catalog = Catalog::new();
        for resource in self.resources() {
            catalog.upsert(SourceId::Manifests, resource);
        }
        catalog.build_snapshot(BuildOptions::default()).0
    }

    /// The cluster's objects, as a source lists them.
    pub fn resources(&self) -> Vec<Resource> {
        let mut resources = Vec::new();
        for (id, shape) in &self.services {
            let (vip, endpoint_ip): (IpAddr, fn(u8) -> IpAddr) = match shape.v6 {
                false => (IpAddr::V4(Ipv4Addr::new(10, 96, 3, *id)), |last| {
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
                }),
                true => (
                    IpAddr::V6(Ipv6Addr::new(
                        0xfd00,
                        0x10,
                        0x96,
                        0,
                        0,
                        0,
                        3,
                        u16::from(*id),
                    )),
                    |last| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(last))),
                ),
            };
            let mut svc = cluster_ip_service("changing", &format!("svc-{id}"), vip, 80);
            if shape.node_port {
                let node_ports = vec![node_port(Protocol::Tcp, 80, 30100 + u16::from(*id))];
                let exposure = Exposure {
                    node_ports,
                    ..Exposure::default()
                };
                svc = exposed(svc, exposure);
            }
            let endpoints: Vec<(IpAddr, &str)> = shape
                .endpoints
                .iter()
                .map(|(last, node)| (endpoint_ip(*last), *node))
                .collect();
            if let Some(policy) = shape.policy.clone() {
                let rule = DestinationRuleSpec {
                    key: svc.key.clone(),
                    policy,
                    host: String::new(),
                    subsets: Vec::new(),
                };
                resources.push(Resource::DestinationRule(rule.into()));
            }
            let slice = endpoint_slice(&svc, &endpoints, 8080);
            resources.push(Resource::EndpointSlice(slice.into()));
            resources.push(Resource::Service(svc.into()));
        }
        resources
    }
}
