use std::time::Duration;

use edgemesh_lb::PickContext;
use edgemesh_model::{HashKey, LbPolicy, Service};

use crate::common::*;

fn every_policy() -> Vec<(&'static str, Service)> {
    let hour = Duration::from_secs(3600);
    vec![
        ("round robin", service(LbPolicy::RoundRobin)),
        ("random", service(LbPolicy::Random)),
        (
            "hash by ip",
            service(LbPolicy::ConsistentHash(HashKey::SourceIp)),
        ),
        (
            "hash by header",
            service(LbPolicy::ConsistentHash(HashKey::HttpHeader(
                "x-user".into(),
            ))),
        ),
        ("client ip affinity", sticky(LbPolicy::RoundRobin, hour)),
        (
            "affinity over hash",
            sticky(LbPolicy::ConsistentHash(HashKey::SourceIp), hour),
        ),
    ]
}

#[test]
fn excluded_backends_are_never_returned() {
    let port = port(3);
    let exclude = [backend_addr(0), backend_addr(2)];
    for (name, svc) in every_policy() {
        let (lb, _) = balancer();
        for c in 0..100 {
            // Also after the client's entry / ring position pointed at an excluded backend.
            let _ = addr_for(&lb, &svc, &port, client(c));
            let ctx = PickContext {
                http_header: Some("alice"),
                exclude: &exclude,
                ..PickContext::client(client(c))
            };
            let picked = pick(&lb, &svc, &port, ctx).map(|p| p.backend.addr);
            assert_eq!(picked, Some(backend_addr(1)), "{name}, client {c}");
        }
    }
}

#[test]
fn all_excluded_or_none_gives_none() {
    let all = [backend_addr(0), backend_addr(1), backend_addr(2)];
    for (name, svc) in every_policy() {
        let (lb, _) = balancer();
        let ctx = PickContext {
            exclude: &all,
            ..PickContext::client(client(0))
        };
        assert!(
            pick(&lb, &svc, &port(3), ctx).is_none(),
            "{name}: all excluded"
        );
        let ctx = PickContext::client(client(0));
        assert!(
            pick(&lb, &svc, &port(0), ctx).is_none(),
            "{name}: no backends"
        );
    }
}

#[test]
fn hash_with_held_leases_still_honours_exclusions() {
    let (lb, _) = balancer();
    let svc = service(LbPolicy::ConsistentHash(HashKey::SourceIp));
    let port = port(3);
    // Fill the only allowed backend beyond the cap: it must still be returned, not None.
    let exclude = [backend_addr(0), backend_addr(2)];
    let ctx = PickContext {
        exclude: &exclude,
        ..PickContext::client(client(0))
    };
    let held: Vec<_> = (0..10)
        .map(|_| pick(&lb, &svc, &port, ctx).expect("a backend"))
        .collect();
    assert!(held.iter().all(|p| p.backend.addr == backend_addr(1)));
}
