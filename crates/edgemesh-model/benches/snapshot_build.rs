//! Rebuild of a Snapshot of 10,000 Services with 30,000 endpoints (target: under 50 ms).
use criterion::{Criterion, criterion_group, criterion_main};
use edgemesh_model::BuildOptions;
use edgemesh_model::fixtures::large_catalog;

fn rebuild(c: &mut Criterion) {
    let catalog = large_catalog(10_000, 3);
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(20);
    group.bench_function("build 10k services / 30k endpoints", |b| {
        // The previous snapshot is freed when its last reader lets go, off the rebuild path.
        b.iter_with_large_drop(|| catalog.build_snapshot(BuildOptions::default()))
    });
    group.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
