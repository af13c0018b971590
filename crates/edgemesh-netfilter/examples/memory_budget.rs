//! Where the agent's memory goes per service: the bytes live after each stage of the control
//! plane for N services with 3 endpoints each (the shape of `scripts/bench-scale.sh`), counted
//! by a wrapping global allocator, so the figures are the heap's own, without allocator slack.
//!
//!   cargo run --release -p edgemesh-netfilter --example memory_budget -- 100000
#![allow(clippy::unwrap_used, clippy::expect_used)]

use edgemesh_model::fixtures::large_catalog;
use edgemesh_model::{BuildOptions, Snapshot};
use edgemesh_netfilter::{FastPathOptions, RuleOptions, desired_rules};

#[path = "../../edgemesh-testkit/include/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live;

fn main() {
    let services: u32 = std::env::args()
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("a number of services"));
    let mut last = live();
    let mut report = |stage: &str| {
        let now = live();
        let grown = now - last;
        println!(
            "{stage:<40} {:>8.1} MiB  {:>6} B/service",
            grown as f64 / (1 << 20) as f64,
            grown / services as isize
        );
        last = now;
    };
    let mut catalog = large_catalog(services, 3);
    report("catalog (specs)");
    let options = BuildOptions {
        version: 1,
        ..BuildOptions::default()
    };
    let snapshot = catalog.build_next(&Snapshot::empty(), options).0;
    report("Snapshot");
    let rules = RuleOptions {
        fast_path: Some(FastPathOptions {
            local_node: Some("node-0".into()),
        }),
        ..RuleOptions::default()
    };
    let rules = desired_rules(&snapshot, &rules);
    report("rule set (kept by the nft backend)");
    println!(
        "{:<40} {:>8.1} MiB  {:>6} B/service",
        "total",
        live() as f64 / (1 << 20) as f64,
        live() / services as isize
    );
    drop((rules, snapshot, catalog));
    println!("\nsizes of the structures that repeat per object:");
    for (name, size) in [
        (
            "Resource (in a catalog slot)",
            size_of::<edgemesh_model::Resource>(),
        ),
        ("ServiceSpec", size_of::<edgemesh_model::ServiceSpec>()),
        (
            "EndpointSetSpec",
            size_of::<edgemesh_model::EndpointSetSpec>(),
        ),
        ("EndpointSpec", size_of::<edgemesh_model::EndpointSpec>()),
        ("Service (Snapshot)", size_of::<edgemesh_model::Service>()),
        (
            "ServicePort (Snapshot)",
            size_of::<edgemesh_model::ServicePort>(),
        ),
        ("Backend", size_of::<edgemesh_model::Backend>()),
        ("Endpoint", size_of::<edgemesh_model::Endpoint>()),
        ("ObjectKey", size_of::<edgemesh_model::ObjectKey>()),
        ("Frontend", size_of::<edgemesh_model::Frontend>()),
    ] {
        println!("  {name:<36} {size:>4} B");
    }
}
