use std::collections::HashSet;
use std::time::Duration;

use edgemesh_lb::PickContext;
use edgemesh_model::{HashKey, LbPolicy};

use crate::common::*;

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn first_picks_go_round_robin_then_stick() {
    let (lb, _) = balancer();
    let (svc, port) = (sticky(LbPolicy::RoundRobin, TIMEOUT), port(3));
    let first: Vec<_> = (0..3)
        .map(|c| addr_for(&lb, &svc, &port, client(c)))
        .collect();
    assert_eq!(
        first.iter().collect::<HashSet<_>>().len(),
        3,
        "round robin: {first:?}"
    );
    for _ in 0..20 {
        for c in 0..3 {
            assert_eq!(addr_for(&lb, &svc, &port, client(c)), first[c as usize]);
        }
    }
}

#[test]
fn affinity_wins_over_the_destination_rule() {
    let (lb, _) = balancer();
    let svc = sticky(LbPolicy::ConsistentHash(HashKey::SourceIp), TIMEOUT);
    let port = port(4);
    // Hashing 4 clients onto 4 backends rarely hits all 4; round robin always does.
    let first: HashSet<_> = (0..4)
        .map(|c| addr_for(&lb, &svc, &port, client(c)))
        .collect();
    assert_eq!(first.len(), 4);
}

#[test]
fn affinity_expires_after_the_timeout_since_last_use() {
    let (lb, clock) = balancer();
    let (svc, port) = (sticky(LbPolicy::RoundRobin, TIMEOUT), port(3));
    let stuck = addr_for(&lb, &svc, &port, client(7));
    // Used every 9 s: each use restarts the timeout, so 27 s later it still sticks.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(9));
        assert_eq!(addr_for(&lb, &svc, &port, client(7)), stuck);
    }
    clock.advance(TIMEOUT);
    // Sticky hits did not move the cursor: the fresh pick is the next backend in turn.
    let fresh = addr_for(&lb, &svc, &port, client(7));
    assert_ne!(fresh, stuck);
    assert_eq!(
        addr_for(&lb, &svc, &port, client(7)),
        fresh,
        "the new backend sticks"
    );
}

#[test]
fn a_removed_backend_releases_its_clients() {
    let (lb, _) = balancer();
    let svc = sticky(LbPolicy::RoundRobin, TIMEOUT);
    let before = port(3);
    let stuck = addr_for(&lb, &svc, &before, client(1));
    let after = port_of((0..3).map(backend_addr).filter(|a| *a != stuck));
    let moved = addr_for(&lb, &svc, &after, client(1));
    assert_ne!(moved, stuck);
    assert!((0..10).all(|_| addr_for(&lb, &svc, &after, client(1)) == moved));
}

#[test]
fn a_failed_backend_is_replaced_and_the_replacement_sticks() {
    let (lb, _) = balancer();
    let (svc, port) = (sticky(LbPolicy::RoundRobin, TIMEOUT), port(3));
    let stuck = addr_for(&lb, &svc, &port, client(1));
    let exclude = [stuck];
    let ctx = PickContext {
        exclude: &exclude,
        ..PickContext::client(client(1))
    };
    let replacement = pick(&lb, &svc, &port, ctx).expect("a backend").backend.addr;
    assert_ne!(replacement, stuck);
    assert_eq!(addr_for(&lb, &svc, &port, client(1)), replacement);
}

#[test]
fn expired_entries_are_swept_by_later_picks_and_by_prune() {
    let (lb, clock) = balancer();
    let (svc, port) = (sticky(LbPolicy::RoundRobin, TIMEOUT), port(3));
    for c in 0..40 {
        addr_for(&lb, &svc, &port, client(c));
    }
    assert_eq!(lb.affinity_entries(&frontend()), 40);
    clock.advance(TIMEOUT);
    // Each pick sweeps a few: ten picks by one client clear them all.
    for _ in 0..10 {
        addr_for(&lb, &svc, &port, client(1_000));
    }
    assert_eq!(lb.affinity_entries(&frontend()), 1);
    clock.advance(TIMEOUT);
    lb.retain(|_| true);
    assert_eq!(lb.affinity_entries(&frontend()), 0);
}
