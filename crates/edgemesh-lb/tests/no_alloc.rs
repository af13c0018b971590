//! A pick allocates nothing in the steady state (the state of a frontend, its hash ring and an
//! affinity entry are allocated once, on first use).
//!
//! Counting allocations needs a global allocator, whose trait is `unsafe` to implement; this
//! test binary only wraps the system allocator and counts calls. It counts the calls of the
//! thread that picks only: the test harness's own threads allocate when they please (a loaded CI
//! machine once showed 4 such allocations during the picks).
#![allow(unsafe_code, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use edgemesh_lb::{Balancer, Destination, LoadBalancer, PickContext};
use edgemesh_model::{
    Backend, ClientIpAffinity, Frontend, HashKey, LbPolicy, ObjectKey, Protocol, ProxyDecision,
    Service, ServiceKind, ServicePort, ServiceSpec,
};

struct Counting;

thread_local! {
    // `const` and without a destructor: reading it never allocates, so `alloc` may use it.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn service(policy: LbPolicy, affinity: bool) -> Service {
    Service {
        spec: Arc::new(ServiceSpec {
            key: ObjectKey::new("ns", "svc"),
            kind: ServiceKind::ClusterIp {
                cluster_ips: vec![],
            },
            ports: Vec::new(),
            has_proxy_name_label: false,
            session_affinity: affinity.then_some(ClientIpAffinity {
                timeout: Duration::from_secs(60),
            }),
        }),
        proxy: ProxyDecision::Proxied,
        lb_policy: policy,
        ports: vec![],
        endpoints: vec![],
    }
}

fn port(n: u8) -> ServicePort {
    ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
        app_protocol: None,
        backends: (0..n)
            .map(|i| Backend {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)), 8080),
                node_name: Some("node-a".into()),
            })
            .collect(),
    }
}

#[test]
fn steady_state_picks_do_not_allocate() {
    let frontend = Frontend {
        ip: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
        port: 80,
        protocol: Protocol::Tcp,
    };
    let port = port(100);
    let header = service(
        LbPolicy::ConsistentHash(HashKey::HttpHeader("x-user".into())),
        false,
    );
    let cases = [
        ("round robin", service(LbPolicy::RoundRobin, false)),
        ("random", service(LbPolicy::Random, false)),
        (
            "hash",
            service(LbPolicy::ConsistentHash(HashKey::SourceIp), false),
        ),
        ("hash by header", header),
        ("affinity", service(LbPolicy::RoundRobin, true)),
    ];
    let exclude = [SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        8080,
    )];
    for (name, svc) in cases {
        let lb = LoadBalancer::default();
        let to = Destination {
            frontend: &frontend,
            service: &svc,
            port: &port,
        };
        let pick_all = || {
            for c in 0..64u8 {
                let ctx = PickContext {
                    client: IpAddr::V4(Ipv4Addr::new(203, 0, 113, c)),
                    http_header: Some("alice"),
                    exclude: &exclude,
                };
                assert!(lb.pick(to, &ctx).is_some());
            }
        };
        pick_all(); // first use: frontend state, ring, affinity entries
        let before = allocations();
        for _ in 0..10 {
            pick_all();
        }
        let allocated = allocations() - before;
        assert_eq!(allocated, 0, "{name}: {allocated} allocations in 640 picks");
    }
}
