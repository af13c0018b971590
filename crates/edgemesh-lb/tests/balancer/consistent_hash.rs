use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use edgemesh_lb::{Balancer, ConsistentHashConfig, PickContext, Picked};
use edgemesh_model::{HashKey, LbPolicy, Service, ServicePort};
use proptest::prelude::*;

use crate::common::*;

fn by_ip() -> Service {
    service(LbPolicy::ConsistentHash(HashKey::SourceIp))
}

fn by_header() -> Service {
    service(LbPolicy::ConsistentHash(HashKey::HttpHeader(
        "x-user".into(),
    )))
}

fn header_pick(
    lb: &impl Balancer,
    port: &ServicePort,
    client: IpAddr,
    value: Option<&str>,
) -> SocketAddr {
    let ctx = PickContext {
        http_header: value,
        ..PickContext::client(client)
    };
    pick(lb, &by_header(), port, ctx)
        .expect("a backend")
        .backend
        .addr
}

#[test]
fn one_client_stays_on_one_backend() {
    let (lb, _) = balancer();
    let port = port(10);
    for c in 0..50 {
        let first = addr_for(&lb, &by_ip(), &port, client(c));
        assert!((0..20).all(|_| addr_for(&lb, &by_ip(), &port, client(c)) == first));
    }
}

#[test]
fn one_header_value_stays_on_one_backend_whatever_the_client() {
    let (lb, _) = balancer();
    let port = port(10);
    let first = header_pick(&lb, &port, client(0), Some("alice"));
    assert!((1..50).all(|c| header_pick(&lb, &port, client(c), Some("alice")) == first));
}

#[test]
fn keys_spread_over_the_backends() {
    let (lb, _) = balancer();
    let port = port(10);
    let counts = tally((0..1_000).map(|c| addr_for(&lb, &by_ip(), &port, client(c))));
    assert_eq!(counts.len(), 10, "{counts:?}");
    // Partition ownership is capped at ceil(100/10 * 1.25) = 13 of 100 partitions.
    assert!(counts.values().all(|&c| c <= 200), "{counts:?}");
}

#[test]
fn missing_header_falls_back_to_the_source_ip() {
    let (lb, _) = balancer();
    let port = port(10);
    for c in 0..50 {
        let by_source = addr_for(&lb, &by_ip(), &port, client(c));
        assert_eq!(header_pick(&lb, &port, client(c), None), by_source);
    }
}

/// Each key's backend with `set` as the backends (leases released after each pick).
fn placement(config: ConsistentHashConfig, set: &[SocketAddr], keys: &[IpAddr]) -> Vec<SocketAddr> {
    let (lb, _) = balancer_with(config);
    let port = port_of(set.iter().copied());
    keys.iter()
        .map(|&k| addr_for(&lb, &by_ip(), &port, k))
        .collect()
}

fn keys_moved_without_cause(
    config: ConsistentHashConfig,
    keys: &[IpAddr],
    removed: usize,
) -> (usize, usize) {
    let all: Vec<SocketAddr> = (0..10).map(backend_addr).collect();
    let fewer: Vec<SocketAddr> = all.iter().copied().filter(|a| *a != all[removed]).collect();
    let (before, after) = (
        placement(config, &all, keys),
        placement(config, &fewer, keys),
    );
    let stayed: Vec<_> = before
        .iter()
        .zip(&after)
        .filter(|(b, _)| **b != all[removed])
        .collect();
    let moved = stayed.iter().filter(|(b, a)| b != a).count();
    (moved, stayed.len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With a load so high it never binds, only the removed backend's keys move.
    #[test]
    fn removing_a_backend_moves_only_its_keys(keys in prop::collection::vec(any::<u32>(), 1..200), removed in 0usize..10) {
        let keys: Vec<IpAddr> = keys.into_iter().map(client).collect();
        let unbounded = ConsistentHashConfig { load: 1e6, ..ConsistentHashConfig::default() };
        prop_assert_eq!(keys_moved_without_cause(unbounded, &keys, removed).0, 0);
    }

    /// With EdgeMesh's load of 1.25 the partition cap may push a few more along: stated bound,
    /// at most a quarter of the other keys (see the ring's own tests for the measured churn).
    #[test]
    fn removing_a_backend_with_default_load_moves_few_others(keys in prop::collection::vec(any::<u32>(), 20..200), removed in 0usize..10) {
        let keys: Vec<IpAddr> = keys.into_iter().map(client).collect();
        let (moved, stayed) = keys_moved_without_cause(ConsistentHashConfig::default(), &keys, removed);
        prop_assert!(moved * 4 <= stayed, "{} of {} keys moved without cause", moved, stayed);
    }
}

fn cap(load: f64, live: usize, backends: usize) -> usize {
    (load * live as f64 / backends as f64).ceil() as usize
}

/// Live connections per backend index 0..n (from the balancer's own counters).
fn loads(lb: &TestBalancer) -> Vec<usize> {
    lb.backend_loads(&frontend())
        .unwrap_or_default()
        .iter()
        .map(|(_, l)| *l)
        .collect()
}

#[test]
fn live_connections_stay_under_the_bound_even_from_one_hot_client() {
    let (lb, _) = balancer();
    let port = port(10);
    let mut held: Vec<Picked> = Vec::new();
    for t in 1..=300 {
        // Most connections come from one client: without the bound they would pile up.
        let c = if t % 5 == 0 { client(t) } else { client(0) };
        held.push(pick(&lb, &by_ip(), &port, PickContext::client(c)).expect("a backend"));
        let bound = cap(1.25, t as usize, 10);
        let loads = loads(&lb);
        assert!(
            loads.iter().all(|&l| l <= bound),
            "after {t}: {loads:?} over {bound}"
        );
    }
    drop(held);
    assert!(
        loads(&lb).iter().all(|&l| l == 0),
        "leases release their load"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Connect(u32),
    Close(prop::sample::Index),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the sequence of connects and closes, a backend chosen for a new connection
    /// holds at most ceil(load * live / backends) afterwards.
    #[test]
    fn placement_respects_the_bound(ops in prop::collection::vec(
        prop_oneof![3 => (0u32..8).prop_map(Op::Connect), 1 => any::<prop::sample::Index>().prop_map(Op::Close)],
        1..300,
    )) {
        let (lb, _) = balancer();
        let port = port(7);
        let mut held: Vec<Picked> = Vec::new();
        for op in ops {
            match op {
                Op::Connect(c) => {
                    let picked = pick(&lb, &by_ip(), &port, PickContext::client(client(c))).expect("a backend");
                    let chosen = picked.backend.addr;
                    held.push(picked);
                    let load = lb.backend_loads(&frontend()).unwrap_or_default()
                        .into_iter().find(|(a, _)| *a == chosen).map_or(0, |(_, l)| l);
                    prop_assert!(load <= cap(1.25, held.len(), 7), "{} on {} with {} live", load, chosen, held.len());
                }
                Op::Close(i) if !held.is_empty() => { held.swap_remove(i.index(held.len())); }
                Op::Close(_) => {}
            }
        }
    }
}

#[test]
fn over_the_bound_the_next_backend_is_used_then_the_preferred_again() {
    let (lb, _) = balancer();
    let port = port(3);
    let preferred = addr_for(&lb, &by_ip(), &port, client(1));
    let first = pick(&lb, &by_ip(), &port, PickContext::client(client(1))).expect("a backend");
    assert_eq!(first.backend.addr, preferred);
    // One live connection on 3 backends: cap ceil(1.25 * 2 / 3) = 1, so the preferred is full.
    let second = addr_for(&lb, &by_ip(), &port, client(1));
    assert_ne!(second, preferred);
    drop(first);
    assert_eq!(addr_for(&lb, &by_ip(), &port, client(1)), preferred);
    let used: HashSet<_> = [preferred, second].into();
    assert_eq!(used.len(), 2);
}
