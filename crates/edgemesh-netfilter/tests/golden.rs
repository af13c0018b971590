//! Rendered nft and iptables-restore text for a small Snapshot, compared to files under
//! `tests/golden/`. Regenerate with `EDGEMESH_REGENERATE_GOLDEN=1 cargo test -p edgemesh-netfilter --test golden`
//! and review the diff.

use std::path::PathBuf;

use edgemesh_netfilter::fixtures::{policies_snapshot, sample_snapshot};
use edgemesh_netfilter::iptables::order::{NatTable, plan_jumps};
use edgemesh_netfilter::iptables::udp::render_udp;
use edgemesh_netfilter::{
    DEFAULT_TPROXY_MARK, FastPathOptions, IpFamily, RuleOptions, UdpOptions, desired_rules,
    render_iptables, render_nft,
};

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("EDGEMESH_REGENERATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with EDGEMESH_REGENERATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs; regenerate if intended",
        path.display()
    );
}

#[test]
fn nft_tcp_only() {
    let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
    check("sample.nft", &render_nft(&rules));
}

#[test]
fn nft_with_udp_tproxy() {
    let opts = RuleOptions {
        udp: Some(UdpOptions {
            port: 40002,
            mark: DEFAULT_TPROXY_MARK,
        }),
        ..RuleOptions::default()
    };
    check(
        "sample-udp.nft",
        &render_nft(&desired_rules(&sample_snapshot(), &opts)),
    );
}

#[test]
fn iptables_first_sync_per_family() {
    let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
    let (jumps, _) = plan_jumps(&NatTable::default());
    check(
        "sample-v4.iptables",
        &render_iptables(&rules, IpFamily::V4, &jumps),
    );
    check(
        "sample-v6.iptables",
        &render_iptables(&rules, IpFamily::V6, &jumps),
    );
}

#[test]
fn nft_with_the_kernel_fast_path() {
    let opts = RuleOptions {
        fast_path: Some(FastPathOptions {
            local_node: Some("n1".into()),
        }),
        ..RuleOptions::default()
    };
    check(
        "policies-fast-path.nft",
        &render_nft(&desired_rules(&policies_snapshot(), &opts)),
    );
}

#[test]
fn iptables_udp_first_sync() {
    let opts = RuleOptions {
        udp: Some(UdpOptions {
            port: 40002,
            mark: DEFAULT_TPROXY_MARK,
        }),
        ..RuleOptions::default()
    };
    let rules = desired_rules(&sample_snapshot(), &opts);
    let nothing_yet = [String::new(), String::new()];
    check(
        "sample-udp-v4.iptables",
        &render_udp(&rules, IpFamily::V4, &nothing_yet),
    );
}
