//! Rule generation and rendering for 1,000 and 10,000 services.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use edgemesh_netfilter::fixtures::many_services;
use edgemesh_netfilter::{IpFamily, RuleOptions, desired_rules, render_iptables, render_nft};

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("netfilter");
    for n in [1_000u32, 10_000] {
        let snapshot = many_services(n);
        let opts = RuleOptions::default();
        group.bench_with_input(BenchmarkId::new("desired_rules", n), &snapshot, |b, s| {
            b.iter(|| desired_rules(black_box(s), &opts))
        });
        let rules = desired_rules(&snapshot, &opts);
        group.bench_with_input(BenchmarkId::new("render_nft", n), &rules, |b, r| {
            b.iter(|| render_nft(black_box(r)))
        });
        group.bench_with_input(BenchmarkId::new("render_iptables", n), &rules, |b, r| {
            b.iter(|| render_iptables(black_box(r), IpFamily::V4, &[]))
        });
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
