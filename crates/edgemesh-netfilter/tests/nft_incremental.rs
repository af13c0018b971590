//! Incremental nftables updates against the real kernel, each test in network namespaces it
//! creates (needs root; fails, never skips, without it): after any sequence of changes the
//! table must be what a full rewrite of the same rules leaves.

// Test code: a failed step panics with its error.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Netns;
use edgemesh_netfilter::fixtures::{ChangingCluster, many_services, sample_snapshot};
use edgemesh_netfilter::{
    FastPathOptions, NftBackend, RuleBackend, RuleOptions, RuleSet, desired_rules,
};
use serde_json::Value;

fn fast_options() -> RuleOptions {
    RuleOptions {
        fast_path: Some(FastPathOptions {
            local_node: Some("n1".into()),
        }),
        ..RuleOptions::default()
    }
}

/// `nft -j list ruleset` without what differs between two equal tables: handles (a rewrite
/// makes new objects) and the order of set and map elements (the kernel lists a hash set in
/// its own order).
fn ruleset(ns: &Netns) -> Value {
    let mut listed: Value = serde_json::from_str(&ns.exec("nft", &["-j", "list", "ruleset"]))
        .unwrap_or_else(|e| panic!("nft -j: {e}"));
    normalize(&mut listed);
    listed
}

fn normalize(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            fields.remove("handle");
            if let Some(Value::Array(elements)) = fields.get_mut("elem") {
                elements.sort_by_key(|e| e.to_string());
            }
            fields.values_mut().for_each(normalize);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// `rules` as a backend that has never applied anything writes them: a full rewrite.
fn rewrite(ns: &Netns, rules: RuleSet) {
    let stats = NftBackend::new(ns.runner()).apply(rules).unwrap();
    assert!(!stats.incremental);
}

#[test]
fn nft_incremental_updates_leave_what_a_full_rewrite_does() {
    let (incremental_ns, full_ns) = (Netns::new(), Netns::new());
    let mut backend = NftBackend::new(incremental_ns.runner());
    let mut cluster = ChangingCluster::new(0x5eed);
    let mut history = Vec::new();
    let (mut incremental, mut rewritten) = (0, 0);
    for step in 0..60 {
        if step > 0 {
            history.push(cluster.change());
        }
        let rules = desired_rules(&cluster.snapshot(), &fast_options());
        let stats = backend.apply(rules.clone()).unwrap();
        match stats.incremental {
            true => incremental += 1,
            false => rewritten += 1,
        }
        rewrite(&full_ns, rules);
        assert!(
            ruleset(&incremental_ns) == ruleset(&full_ns),
            "step {step} (incremental: {}) left another table; changes: {history:#?}\n\
             incremental:\n{}\nfull:\n{}",
            stats.incremental,
            incremental_ns.exec("nft", &["list", "ruleset"]),
            full_ns.exec("nft", &["list", "ruleset"]),
        );
    }
    // The walk must exercise both paths: element changes and structural ones.
    assert!(
        incremental >= 30 && rewritten >= 3,
        "{incremental} incremental, {rewritten} rewrites"
    );
}

/// A change someone else made to our table makes the next delta fail; the backend then
/// rewrites the table in the same apply instead of leaving it wrong.
#[test]
fn nft_failed_increment_falls_back_to_a_rewrite() {
    let (ns, full_ns) = (Netns::new(), Netns::new());
    let mut backend = NftBackend::new(ns.runner());
    let mut cluster = ChangingCluster::new(3);
    backend
        .apply(desired_rules(&cluster.snapshot(), &fast_options()))
        .unwrap();
    // Empty the fast-path sets behind the backend's back: deleting any of their elements fails.
    ns.exec("nft", &["flush", "set", "inet", "edgemesh", "fastsvc4"]);
    ns.exec("nft", &["flush", "set", "inet", "edgemesh", "svc4"]);
    let mut removed = None;
    for _ in 0..50 {
        let what = cluster.change();
        if what.starts_with("remove service") {
            removed = Some(what);
            break;
        }
    }
    assert!(removed.is_some(), "the walk removed no service");
    let rules = desired_rules(&cluster.snapshot(), &fast_options());
    let stats = backend.apply(rules.clone()).unwrap();
    assert!(!stats.incremental, "{removed:?} was sent as a delta");
    rewrite(&full_ns, rules);
    assert!(ruleset(&ns) == ruleset(&full_ns));
}

/// With a resync interval of zero every apply and every repair tick rewrites the table; the
/// repair tick undoes an element someone added.
#[test]
fn nft_resync_rewrites_the_table() {
    let (ns, full_ns) = (Netns::new(), Netns::new());
    let mut backend = NftBackend::new(ns.runner()).with_resync(Duration::ZERO);
    let cluster = ChangingCluster::new(11);
    let rules = desired_rules(&cluster.snapshot(), &fast_options());
    backend.apply(rules.clone()).unwrap();
    let stats = backend.apply(rules.clone()).unwrap();
    assert!(!stats.incremental, "the resync is due at once");
    let stray = "{ 10.96.9.9 . tcp . 80 }";
    ns.exec(
        "nft",
        &["add", "element", "inet", "edgemesh", "svc4", stray],
    );
    assert!(!backend.repair().unwrap(), "nothing to reorder in nftables");
    rewrite(&full_ns, rules);
    assert!(
        ruleset(&ns) == ruleset(&full_ns),
        "the stray element stayed"
    );
}

/// Without a resync due, unchanged rules send nothing, and one changed endpoint is one small
/// transaction.
#[test]
fn nft_unchanged_rules_send_nothing_and_a_change_little() {
    let ns = Netns::new();
    let mut backend = NftBackend::new(ns.runner());
    let mut cluster = ChangingCluster::new(5);
    let rules = desired_rules(&cluster.snapshot(), &fast_options());
    let first = backend.apply(rules.clone()).unwrap();
    let again = backend.apply(rules).unwrap();
    assert!(again.incremental && again.bytes == 0, "{again:?}");
    loop {
        let what = cluster.change();
        if what.contains("now") {
            break;
        }
    }
    let changed = backend
        .apply(desired_rules(&cluster.snapshot(), &fast_options()))
        .unwrap();
    assert!(changed.incremental, "{changed:?}");
    assert!(
        changed.bytes > 0 && changed.bytes < first.bytes / 4,
        "{changed:?} against a rewrite of {} bytes",
        first.bytes
    );
}

/// A full rewrite that sends the elements over netlink (what a cluster with more than
/// `BULK_ELEMENTS` elements gets) leaves the table the text transaction does: every element
/// layout (IPv4 and IPv6, node ports, fast-path maps of one to three slots) reaches the kernel
/// as `nft` itself would send it, and a rewrite over the previous table replaces it.
#[test]
fn nft_bulk_rewrite_leaves_what_the_text_rewrite_does() {
    let (bulk_ns, text_ns) = (Netns::new(), Netns::new());
    let mut cluster = ChangingCluster::new(0xb01c);
    let mut bulk = NftBackend::new(bulk_ns.runner())
        .with_bulk_elements(0)
        .with_resync(Duration::ZERO);
    let mut history = Vec::new();
    let mut shapes = [" . 2 : ", "fd00:", "@nodeport4", "elements = { tcp . "].map(|s| (s, false));
    for step in 0..25 {
        if step > 0 {
            history.push(cluster.change());
        }
        for options in [RuleOptions::default(), fast_options()] {
            let rules = desired_rules(&cluster.snapshot(), &options);
            let stats = bulk.apply(rules.clone()).unwrap();
            assert!(!stats.incremental, "the resync is due at every apply");
            rewrite(&text_ns, rules);
            assert!(
                ruleset(&bulk_ns) == ruleset(&text_ns),
                "step {step}: the netlink elements differ; changes: {history:#?}\n\
                 bulk:\n{}\ntext:\n{}",
                bulk_ns.exec("nft", &["list", "ruleset"]),
                text_ns.exec("nft", &["list", "ruleset"]),
            );
            let listed = bulk_ns.exec("nft", &["list", "ruleset"]);
            for (shape, seen) in &mut shapes {
                *seen |= listed.contains(*shape);
            }
        }
    }
    assert!(shapes.iter().all(|(_, seen)| *seen), "{shapes:?}");
}

/// What someone else left in our table goes with the next bulk rewrite: a chain and a map of
/// their own, and a set of ours redefined with another type (the declaration then fails and the
/// backend falls back to the one text transaction).
#[test]
fn nft_bulk_rewrite_removes_what_others_left() {
    let (ns, text_ns) = (Netns::new(), Netns::new());
    let mut backend = NftBackend::new(ns.runner())
        .with_bulk_elements(0)
        .with_resync(Duration::ZERO);
    let rules = desired_rules(&ChangingCluster::new(21).snapshot(), &fast_options());
    backend.apply(rules.clone()).unwrap();
    rewrite(&text_ns, rules.clone());
    ns.exec("nft", &["add", "chain", "inet", "edgemesh", "stray"]);
    ns.exec(
        "nft",
        &[
            "add",
            "map",
            "inet",
            "edgemesh",
            "strays",
            "{ type ipv4_addr : ipv4_addr; }",
        ],
    );
    backend.apply(rules.clone()).unwrap();
    assert!(
        ruleset(&ns) == ruleset(&text_ns),
        "{}",
        ns.exec("nft", &["list", "ruleset"])
    );

    ns.exec("nft", &["delete", "table", "inet", "edgemesh"]);
    ns.exec("nft", &["add", "table", "inet", "edgemesh"]);
    ns.exec(
        "nft",
        &[
            "add",
            "set",
            "inet",
            "edgemesh",
            "svc4",
            "{ type ipv4_addr; }",
        ],
    );
    backend.apply(rules).unwrap();
    assert!(
        ruleset(&ns) == ruleset(&text_ns),
        "{}",
        ns.exec("nft", &["list", "ruleset"])
    );
}

/// A rewrite over a loaded table (a restarted agent, the periodic resync) never shows the kernel
/// an empty set: a checker lists the node-port set without pause while new backends rewrite
/// 30,000 services. Deleting the table and sending the elements after it would leave the sets
/// empty for the batch's ~50 ms, which the checker sees.
#[test]
fn nft_bulk_rewrite_never_empties_a_set() {
    let ns = Netns::new();
    let mut rules = desired_rules(&many_services(30_000), &RuleOptions::default());
    let node_ports = desired_rules(&sample_snapshot(), &RuleOptions::default());
    rules.elements.extend(node_ports.elements);
    NftBackend::new(ns.runner()).apply(rules.clone()).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let (name, done) = (ns.name().to_string(), done.clone());
        std::thread::spawn(move || {
            let (mut lists, mut empty) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) && lists < 10_000 {
                let listed = std::process::Command::new("ip")
                    .args([
                        "netns", "exec", &name, "nft", "list", "set", "inet", "edgemesh",
                    ])
                    .arg("nodeport4")
                    .output()
                    .unwrap();
                lists += 1;
                empty += usize::from(!String::from_utf8_lossy(&listed.stdout).contains("elements"));
            }
            (lists, empty)
        })
    };
    for _ in 0..5 {
        let stats = NftBackend::new(ns.runner()).apply(rules.clone()).unwrap();
        assert!(!stats.incremental);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (lists, empty) = checker.join().unwrap();
    assert!(lists >= 20, "the checker listed the set only {lists} times");
    assert_eq!(
        empty, 0,
        "{empty} of {lists} listings found the node-port set empty"
    );
}
