use std::net::SocketAddr;

use edgemesh_model::Protocol;

use super::*;
use crate::fixtures::{ChangingCluster, FAST_RR_V4, WEB_V4, policies_snapshot, sample_snapshot};
use crate::rules::{FastPathOptions, RuleOptions, desired_rules};

fn fast_options() -> RuleOptions {
    RuleOptions {
        fast_path: Some(FastPathOptions {
            local_node: Some("n1".into()),
        }),
        ..RuleOptions::default()
    }
}

fn tcp(ip: std::net::IpAddr, port: u16) -> Frontend {
    Frontend {
        ip,
        port,
        protocol: Protocol::Tcp,
    }
}

#[test]
fn the_same_rules_need_no_transaction() {
    let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
    assert_eq!(render_nft_delta(&rules, &rules).as_deref(), Some(""));
}

#[test]
fn a_removed_and_a_returning_frontend_are_one_element_each() {
    let all = desired_rules(&sample_snapshot(), &RuleOptions::default());
    let mut fewer = all.clone();
    fewer.elements.remove(&tcp(WEB_V4, 80));
    assert_eq!(
        render_nft_delta(&all, &fewer).as_deref(),
        Some("delete element inet edgemesh svc4 { 10.96.0.10 . tcp . 80 }\n")
    );
    assert_eq!(
        render_nft_delta(&fewer, &all).as_deref(),
        Some("add element inet edgemesh svc4 { 10.96.0.10 . tcp . 80 }\n")
    );
}

#[test]
fn a_moved_endpoint_replaces_its_map_element_and_keeps_the_set() {
    let old = desired_rules(&policies_snapshot(), &fast_options());
    let mut new = old.clone();
    let moved: SocketAddr = "192.0.2.250:8080".parse().unwrap();
    let route = new.fast.get_mut(&tcp(FAST_RR_V4, 80)).unwrap();
    route.backends[1] = moved;
    let delta = render_nft_delta(&old, &new).unwrap();
    assert_eq!(
        delta,
        "delete element inet edgemesh fast4_rr_2 { 10.96.1.1 . 80 . 0, 10.96.1.1 . 80 . 1 }\n\
         add element inet edgemesh fast4_rr_2 { 10.96.1.1 . 80 . 0 : 192.0.2.11 . 8080, \
         10.96.1.1 . 80 . 1 : 192.0.2.250 . 8080 }\n"
    );
}

#[test]
fn a_label_alone_changes_nothing_in_the_kernel() {
    let old = desired_rules(&policies_snapshot(), &fast_options());
    let mut new = old.clone();
    for label in new.elements.values_mut() {
        label.push_str("-renamed");
    }
    assert_eq!(render_nft_delta(&old, &new).as_deref(), Some(""));
}

#[test]
fn other_chains_or_options_need_the_full_rewrite() {
    let plain = desired_rules(&policies_snapshot(), &RuleOptions::default());
    let fast = desired_rules(&policies_snapshot(), &fast_options());
    assert_eq!(render_nft_delta(&plain, &fast), None, "options differ");
    // No endpoints at all: no fast-path group, so no DNAT rules.
    let fewer = desired_rules(&sample_snapshot(), &fast_options());
    assert_ne!(fewer.chains, fast.chains);
    assert_eq!(render_nft_delta(&fast, &fewer), None, "the groups went");
}

/// Every change of the random walk that keeps the chains is expressible, and its delta names
/// only frontends whose rules changed (the walk must also reach both kinds, or it tests little).
#[test]
fn random_changes_are_mostly_incremental() {
    let mut cluster = ChangingCluster::new(7);
    let mut old = desired_rules(&cluster.snapshot(), &fast_options());
    let (mut incremental, mut full) = (0, 0);
    for _ in 0..300 {
        let what = cluster.change();
        let new = desired_rules(&cluster.snapshot(), &fast_options());
        match render_nft_delta(&old, &new) {
            Some(delta) => {
                incremental += 1;
                assert_eq!(
                    delta.is_empty(),
                    old == new || same_kernel(&old, &new),
                    "{what}"
                );
            }
            None => {
                full += 1;
                assert_ne!(old.chains, new.chains, "{what}");
            }
        }
        old = new;
    }
    assert!(
        incremental > 150 && full > 5,
        "{incremental} incremental, {full} full"
    );
}

/// Equal as far as the kernel sees: same frontends, same fast routes but for labels.
fn same_kernel(a: &RuleSet, b: &RuleSet) -> bool {
    let routes = |r: &RuleSet| -> Vec<_> {
        r.fast
            .iter()
            .map(|(f, route)| (*f, route.group(), route.backends.clone()))
            .collect()
    };
    a.elements.keys().eq(b.elements.keys()) && routes(a) == routes(b)
}
