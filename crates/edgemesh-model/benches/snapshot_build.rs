//! Rebuild of a Snapshot of 10,000 Services with 30,000 endpoints (target: under 50 ms), and the
//! Snapshot after one endpoint change at 100,000 Services (only that service rebuilt).
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use edgemesh_model::fixtures::large_catalog;
use edgemesh_model::{BuildOptions, Resource, ResourceKind, ResourceRef, Snapshot, SourceId};

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

fn one_change(c: &mut Criterion) {
    let mut catalog = large_catalog(100_000, 3);
    let options = |version| BuildOptions {
        version,
        ..BuildOptions::default()
    };
    let first = catalog.build_next(&Snapshot::empty(), options(1)).0;
    let reference = ResourceRef {
        kind: ResourceKind::EndpointSlice,
        key: edgemesh_model::ObjectKey::new("bench", "svc-50000-slice"),
    };
    let Some(Resource::EndpointSlice(slice)) = catalog.get(&reference).cloned() else {
        panic!("the fixture names its slices {reference}");
    };
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(20);
    let mut flip = 0u32;
    group.bench_function("one endpoint change at 100k services", |b| {
        b.iter_with_large_drop(|| {
            flip += 1;
            let mut changed = (*slice).clone();
            changed.subsets[0].endpoints[0].ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, flip as u8));
            catalog.upsert(SourceId::Manifests, Resource::EndpointSlice(changed.into()));
            let next = catalog.build_next(&first, options(2)).0;
            assert!(next.changes.is_some(), "rebuilt incrementally");
            next
        })
    });
    group.finish();
}

criterion_group!(benches, rebuild, one_change);
criterion_main!(benches);
