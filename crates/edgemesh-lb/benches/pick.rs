//! Cost of one pick on the connection path (target: well under 1 µs, no allocation) for round
//! robin, random, consistent hash and ClientIP affinity, with 3 and 100 backends.
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use edgemesh_lb::{Balancer, Destination, LoadBalancer, PickContext};
use edgemesh_model::{
    Backend, ClientIpAffinity, Frontend, HashKey, LbPolicy, ObjectKey, Protocol, ProxyDecision,
    Service, ServiceKind, ServicePort, ServiceSpec, ThinStr,
};

fn service(policy: LbPolicy, affinity: bool) -> Service {
    Service {
        spec: Arc::new(ServiceSpec {
            key: ObjectKey::new("bench", "svc"),
            kind: ServiceKind::ClusterIp {
                cluster_ips: vec![IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10))],
            },
            ports: Vec::new(),
            has_proxy_name_label: false,
            session_affinity: affinity.then_some(ClientIpAffinity {
                timeout: ClientIpAffinity::DEFAULT_TIMEOUT,
            }),
        }),
        proxy: ProxyDecision::Proxied,
        lb_policy: policy,
        ports: vec![],
        endpoints: vec![],
    }
}

fn port(backends: usize) -> ServicePort {
    let backends: Arc<[Backend]> = (0..backends)
        .map(|i| Backend {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0af4_0000 + i as u32)), 8080),
            node_name: Some(ThinStr::from("node-1")),
        })
        .collect();
    ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
        app_protocol: None,
        backends,
    }
}

fn picks(c: &mut Criterion) {
    let frontend = Frontend {
        ip: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
        port: 80,
        protocol: Protocol::Tcp,
    };
    let cases = [
        ("round robin", LbPolicy::RoundRobin, false),
        ("random", LbPolicy::Random, false),
        (
            "hash source ip",
            LbPolicy::ConsistentHash(HashKey::SourceIp),
            false,
        ),
        ("client ip affinity", LbPolicy::RoundRobin, true),
    ];
    let mut group = c.benchmark_group("pick");
    for n in [3, 100] {
        let port = port(n);
        for (name, policy, affinity) in &cases {
            let lb = LoadBalancer::default();
            let service = service(policy.clone(), *affinity);
            let to = Destination {
                frontend: &frontend,
                service: &service,
                port: &port,
            };
            let mut client = 0u32;
            group.bench_function(format!("{name}/{n} backends"), |b| {
                b.iter(|| {
                    // 1,024 distinct clients: affinity hits its table, hashing varies its key.
                    client = (client + 1) % 1024;
                    let ip = IpAddr::V4(Ipv4Addr::from(0xC633_6400 + client));
                    let ctx = PickContext::client(ip);
                    black_box(lb.pick(to, black_box(&ctx)))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
