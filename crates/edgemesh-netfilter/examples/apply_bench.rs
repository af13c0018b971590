//! Real apply time with both backends, inside a network namespace this program creates and
//! deletes (needs root): the first (full) apply, a rewrite over it by a new backend (what a
//! restarted agent does), the same rules again, and the rules with one
//! frontend fewer (nftables sends only that element; iptables rewrites its chains). 1,000 and
//! 10,000 services with both backends, 100,000 with nftables only:
//! `cargo run --release -p edgemesh-netfilter --example apply_bench`

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed step panics with its error

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use edgemesh_netfilter::fixtures::many_services;
use edgemesh_netfilter::{
    IpFamily, IptablesBackend, NftBackend, RuleBackend, RuleOptions, RuleSet, desired_rules,
};

const ROUNDS: usize = 5;

fn main() {
    println!(
        "| backend  | services | first apply | rewrite over it (restart) | same rules again | one frontend fewer (median of {ROUNDS}) | its bytes | full bytes |"
    );
    println!(
        "|----------|---------:|------------:|------------:|------------:|------------:|------:|------:|"
    );
    for n in [1_000u32, 10_000, 100_000] {
        let snapshot = many_services(n);
        let (built, rules) = timed(|| desired_rules(&snapshot, &RuleOptions::default()));
        eprintln!("{n} services: desired_rules {:.1} ms", ms(built));
        let ns = common::Netns::new();
        let runner = ns.runner();
        let mut backends: Vec<Box<dyn Fn() -> Box<dyn RuleBackend>>> =
            vec![Box::new(|| Box::new(NftBackend::new(runner.clone())))];
        if n <= 10_000 {
            backends.push(Box::new(|| {
                Box::new(IptablesBackend::with_families(
                    runner.clone(),
                    &[IpFamily::V4],
                ))
            }));
        }
        for new_backend in backends {
            let mut backend = new_backend();
            let (first, stats) = timed(|| backend.apply(rules.clone()).unwrap());
            // A restarted agent: a backend that applied nothing rewrites the table in place.
            let (restart, _) = timed(|| new_backend().apply(rules.clone()).unwrap());
            let (again, _) = timed(|| backend.apply(rules.clone()).unwrap());
            let mut fewer: Vec<(Duration, usize)> = (0..ROUNDS)
                .map(|i| {
                    let (took, stats) = timed(|| backend.apply(one_fewer(&rules, i)).unwrap());
                    backend.apply(rules.clone()).unwrap();
                    (took, stats.bytes)
                })
                .collect();
            fewer.sort();
            let (median, bytes) = fewer[ROUNDS / 2];
            println!(
                "| {:8} | {n:>8} | {:>9.1} ms | {:>9.1} ms | {:>9.1} ms | {:>9.1} ms | {bytes:>5} | {:>5} |",
                backend.name(),
                ms(first),
                ms(restart),
                ms(again),
                ms(median),
                stats.bytes
            );
            backend.cleanup().unwrap();
        }
    }
}

/// `rules` without its `i`-th frontend.
fn one_fewer(rules: &RuleSet, i: usize) -> RuleSet {
    let mut fewer = rules.clone();
    let frontend = *rules.elements.keys().nth(i * 7).unwrap();
    fewer.elements.remove(&frontend);
    fewer
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let value = f();
    (started.elapsed(), value)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
