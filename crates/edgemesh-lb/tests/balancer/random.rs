use edgemesh_lb::PickContext;
use edgemesh_model::LbPolicy;

use crate::common::*;

/// Pearson's chi-square statistic of `counts` against a uniform expectation.
fn chi_square(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Stated bound: with 10 backends (9 degrees of freedom) the statistic stays under 27.88, the
/// 0.1% critical value, for the fixed seed. A biased picker (e.g. one backend 5% over) would
/// exceed it by far at 100,000 picks.
#[test]
fn random_is_uniform_by_chi_square() {
    let (lb, _) = balancer();
    let (svc, port) = (service(LbPolicy::Random), port(10));
    let counts = tally((0..100_000).map(|i| addr_for(&lb, &svc, &port, client(i))));
    let counts: Vec<usize> = (0..10)
        .map(|i| counts.get(&backend_addr(i)).copied().unwrap_or(0))
        .collect();
    let statistic = chi_square(&counts);
    assert!(
        statistic < 27.88,
        "chi-square {statistic:.2} over 27.88: {counts:?}"
    );
}

#[test]
fn random_with_exclusions_is_uniform_over_the_rest() {
    let (lb, _) = balancer();
    let (svc, port) = (service(LbPolicy::Random), port(5));
    let exclude = [backend_addr(0), backend_addr(3)];
    let picks = (0..30_000).map(|i| {
        let ctx = PickContext {
            exclude: &exclude,
            ..PickContext::client(client(i))
        };
        pick(&lb, &svc, &port, ctx).expect("a backend").backend.addr
    });
    let counts = tally(picks);
    let allowed: Vec<usize> = [1, 2, 4]
        .iter()
        .map(|&i| counts[&backend_addr(i)])
        .collect();
    assert_eq!(
        counts.len(),
        3,
        "excluded backends never picked: {counts:?}"
    );
    // 2 degrees of freedom: 0.1% critical value 13.82.
    assert!(chi_square(&allowed) < 13.82, "{allowed:?}");
}
