use std::sync::Arc;

use edgemesh_lb::PickContext;
use edgemesh_model::LbPolicy;

use crate::common::*;

#[test]
fn n_times_k_picks_give_each_backend_exactly_n() {
    // (backends k, rounds n)
    let cases = [(1, 5), (2, 5), (3, 7), (7, 3), (100, 4)];
    for (k, n) in cases {
        let (lb, _) = balancer();
        let (svc, port) = (service(LbPolicy::RoundRobin), port(k));
        let counts = tally((0..n * k).map(|i| addr_for(&lb, &svc, &port, client(i as u32))));
        assert_eq!(counts.len(), k, "k={k}: every backend picked");
        assert!(counts.values().all(|&c| c == n), "k={k} n={n}: {counts:?}");
    }
}

#[test]
fn spread_stays_exact_across_a_snapshot_with_the_same_backends() {
    let (lb, _) = balancer();
    let svc = service(LbPolicy::RoundRobin);
    let first = port(3);
    // A rebuilt snapshot carries an equal but distinct Arc<[Backend]>: the cursor must survive.
    let second = port(3);
    assert!(!Arc::ptr_eq(&first.backends, &second.backends));
    let picks = (0..30).map(|i| {
        let port = if i % 2 == 0 { &first } else { &second };
        addr_for(&lb, &svc, port, client(0))
    });
    let counts = tally(picks);
    assert!(counts.values().all(|&c| c == 10), "{counts:?}");
}

#[test]
fn concurrent_picks_keep_the_exact_spread() {
    let (lb, _) = balancer();
    let (svc, port) = (service(LbPolicy::RoundRobin), port(5));
    let counts = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..2_500)
                        .map(|_| addr_for(&lb, &svc, &port, client(1)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        tally(workers.into_iter().flat_map(|w| w.join().expect("worker")))
    });
    assert!(counts.values().all(|&c| c == 2_000), "{counts:?}");
}

#[test]
fn empty_backends_give_none() {
    let (lb, _) = balancer();
    let picked = pick(
        &lb,
        &service(LbPolicy::RoundRobin),
        &port(0),
        PickContext::client(client(0)),
    );
    assert!(picked.is_none());
}
