//! Services, ports and balancers built directly from model types.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use edgemesh_lb::{
    Balancer, ConsistentHashConfig, Destination, LoadBalancer, ManualClock, PickContext, Picked,
    SeededRng,
};
use edgemesh_model::{
    Backend, ClientIpAffinity, Frontend, LbPolicy, ObjectKey, Protocol, ProxyDecision, Service,
    ServiceKind, ServicePort, ServiceSpec,
};

pub type TestBalancer = LoadBalancer<SeededRng, Arc<ManualClock>>;

pub fn frontend() -> Frontend {
    Frontend {
        ip: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
        port: 80,
        protocol: Protocol::Tcp,
    }
}

pub fn service(policy: LbPolicy) -> Service {
    Service {
        spec: Arc::new(ServiceSpec {
            key: ObjectKey::new("ns", "svc"),
            kind: ServiceKind::ClusterIp {
                cluster_ips: vec![frontend().ip],
            },
            ports: Vec::new(),
            has_proxy_name_label: false,
            session_affinity: None,
        }),
        proxy: ProxyDecision::Proxied,
        lb_policy: policy,
        ports: vec![],
        endpoints: vec![],
    }
}

pub fn sticky(policy: LbPolicy, timeout: Duration) -> Service {
    let mut service = service(policy);
    Arc::make_mut(&mut service.spec).session_affinity = Some(ClientIpAffinity { timeout });
    service
}

pub fn backend_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i as u8)), 8080)
}

pub fn port_of(addrs: impl IntoIterator<Item = SocketAddr>) -> ServicePort {
    ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
        app_protocol: None,
        backends: addrs
            .into_iter()
            .map(|addr| Backend {
                addr,
                node_name: None,
            })
            .collect(),
    }
}

/// A port with backends 198.51.100.0..n:8080.
pub fn port(n: usize) -> ServicePort {
    port_of((0..n).map(backend_addr))
}

/// Client number `n` (distinct for every u32).
pub fn client(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xCB00_7100u32.wrapping_add(n)))
}

pub fn balancer_with(config: ConsistentHashConfig) -> (TestBalancer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let lb = LoadBalancer::with_sources(config, SeededRng::new(42), Arc::clone(&clock))
        .expect("valid config");
    (lb, clock)
}

pub fn balancer() -> (TestBalancer, Arc<ManualClock>) {
    balancer_with(ConsistentHashConfig::default())
}

pub fn pick(
    lb: &impl Balancer,
    svc: &Service,
    port: &ServicePort,
    ctx: PickContext,
) -> Option<Picked> {
    let to = Destination {
        frontend: &frontend(),
        service: svc,
        port,
    };
    lb.pick(to, &ctx)
}

/// The backend address chosen for `client` (lease released at once).
pub fn addr_for(
    lb: &impl Balancer,
    svc: &Service,
    port: &ServicePort,
    client: IpAddr,
) -> SocketAddr {
    pick(lb, svc, port, PickContext::client(client))
        .expect("a backend")
        .backend
        .addr
}

/// How many of `picks` went to each backend.
pub fn tally(picks: impl IntoIterator<Item = SocketAddr>) -> HashMap<SocketAddr, usize> {
    let mut counts = HashMap::new();
    for addr in picks {
        *counts.entry(addr).or_default() += 1;
    }
    counts
}
