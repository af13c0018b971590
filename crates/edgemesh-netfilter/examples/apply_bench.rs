//! Real apply time of 1,000 and 10,000 services with both backends, inside a network namespace
//! this program creates and deletes (needs root):
//! `cargo run --release -p edgemesh-netfilter --example apply_bench`

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed step panics with its error

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use edgemesh_netfilter::fixtures::many_services;
use edgemesh_netfilter::{
    IpFamily, IptablesBackend, NftBackend, RuleBackend, RuleOptions, desired_rules,
};

const ROUNDS: u32 = 5;

fn main() {
    println!("| backend  | services | first apply | re-apply (median of {ROUNDS}) | bytes |");
    println!("|----------|---------:|------------:|------------:|------:|");
    for n in [1_000u32, 10_000] {
        let rules = desired_rules(&many_services(n), &RuleOptions::default());
        let ns = common::Netns::new();
        let backends: [Box<dyn RuleBackend>; 2] = [
            Box::new(NftBackend::new(ns.runner())),
            Box::new(IptablesBackend::with_families(ns.runner(), &[IpFamily::V4])),
        ];
        for mut backend in backends {
            let first = timed(|| backend.apply(rules.clone()).unwrap().bytes);
            let mut again: Vec<Duration> = (0..ROUNDS)
                .map(|_| timed(|| backend.apply(rules.clone()).unwrap()).0)
                .collect();
            again.sort();
            println!(
                "| {:8} | {n:>8} | {:>9.1} ms | {:>9.1} ms | {:>5} |",
                backend.name(),
                ms(first.0),
                ms(again[again.len() / 2]),
                first.1
            );
            backend.cleanup().unwrap();
        }
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let value = f();
    (started.elapsed(), value)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
