use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::fixtures::{
    DNS_V4, FAST_RANDOM_V4, FAST_RR_V4, HASH_V4, LABELLED_V4, REMOTE_V4, SCTP_V4, SHOP_EXTERNAL_V4,
    SHOP_V4, SINGLE_V4, WEB_V4, WEB_V6, many_services, policies_snapshot, sample_snapshot,
};
use crate::trace::{Packet, Verdict, trace};

const UDP: UdpOptions = UdpOptions {
    port: 40002,
    mark: DEFAULT_TPROXY_MARK,
};

fn with_udp() -> RuleOptions {
    RuleOptions {
        udp: Some(UDP),
        ..RuleOptions::default()
    }
}

const TCP_PROXY: Verdict = Verdict::Redirect {
    port: DEFAULT_TCP_PROXY_PORT,
};
const UDP_PROXY: Verdict = Verdict::Tproxy { port: 40002 };
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 99));
const BYPASS: u32 = DEFAULT_BYPASS_MARK.value;

#[test]
fn packets_are_traced_to_the_expected_verdict() {
    use Hook::{Output, Prerouting};
    use Protocol::{Sctp, Tcp, Udp};
    #[rustfmt::skip]
    let cases: &[(&str, Packet, Verdict)] = &[
        ("proxied v4 from a container", Packet::new(Prerouting, Tcp, WEB_V4, 80), TCP_PROXY),
        ("proxied v4 from the host", Packet::new(Output, Tcp, WEB_V4, 80), TCP_PROXY),
        ("proxied v6", Packet::new(Prerouting, Tcp, WEB_V6, 80), TCP_PROXY),
        ("other port of a proxied IP", Packet::new(Prerouting, Tcp, WEB_V4, 81), Verdict::Continue),
        ("unknown ClusterIP", Packet::new(Output, Tcp, OTHER, 80), Verdict::Continue),
        ("labelled service", Packet::new(Prerouting, Tcp, LABELLED_V4, 9100), Verdict::Continue),
        ("SCTP is never intercepted", Packet::new(Prerouting, Sctp, SCTP_V4, 9999), Verdict::Continue),
        ("the agent's own socket", Packet::new(Output, Tcp, WEB_V4, 80).with_mark(BYPASS), Verdict::Continue),
        ("bypass bit among others", Packet::new(Prerouting, Tcp, WEB_V4, 80).with_mark(BYPASS | 0x4000), Verdict::Continue),
        ("other marks do not bypass", Packet::new(Prerouting, Tcp, WEB_V4, 80).with_mark(0x4000), TCP_PROXY),
        ("UDP port of a TCP frontend", Packet::new(Prerouting, Udp, WEB_V4, 80), Verdict::Continue),
        ("DNS over TCP", Packet::new(Output, Tcp, DNS_V4, 53), TCP_PROXY),
        ("UDP without TPROXY", Packet::new(Prerouting, Udp, DNS_V4, 53), Verdict::Continue),
    ];
    let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
    for (name, packet, want) in cases {
        assert_eq!(trace(&rules, packet), *want, "{name}");
    }
}

#[test]
fn udp_is_tproxied_from_containers_and_from_the_host() {
    use Hook::{Output, Prerouting};
    use Protocol::Udp;
    let rules = desired_rules(&sample_snapshot(), &with_udp());
    #[rustfmt::skip]
    let cases: &[(&str, Packet, Verdict)] = &[
        ("UDP from a container", Packet::new(Prerouting, Udp, DNS_V4, 53), UDP_PROXY),
        ("UDP from the host, re-routed through lo", Packet::new(Output, Udp, DNS_V4, 53), UDP_PROXY),
        ("the agent's own UDP socket", Packet::new(Output, Udp, DNS_V4, 53).with_mark(BYPASS), Verdict::Continue),
        ("UDP to a TCP-only frontend", Packet::new(Output, Udp, WEB_V4, 80), Verdict::Continue),
        ("TCP is still redirected", Packet::new(Output, Protocol::Tcp, DNS_V4, 53), TCP_PROXY),
    ];
    for (name, packet, want) in cases {
        assert_eq!(trace(&rules, packet), *want, "{name}");
    }
}

#[test]
fn only_proxied_frontends_become_elements() {
    let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
    let ips: Vec<IpAddr> = rules.elements.keys().map(|f| f.ip).collect();
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        ips,
        [any, WEB_V4, SHOP_V4, DNS_V4, SHOP_EXTERNAL_V4, WEB_V6],
        "{:?}",
        rules.elements
    );
    assert!(!ips.contains(&LABELLED_V4));
    let missed: Vec<_> = rules.not_intercepted.iter().map(|f| f.protocol).collect();
    use Protocol::{Sctp, Udp};
    // Without TPROXY: shop's UDP node port, SCTP, shop's and DNS's UDP ports, shop's external IP.
    assert_eq!(missed, [Udp, Sctp, Udp, Udp, Udp]);
}

#[test]
fn elements_are_labelled_with_service_and_port() {
    let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
    let labels: Vec<&str> = rules.elements.values().map(String::as_str).collect();
    assert!(labels.contains(&"default/web:http"), "{labels:?}");
    assert!(labels.contains(&"kube-system/dns:dns-tcp"), "{labels:?}");
}

#[test]
fn nat_chains_run_ahead_of_kube_proxy() {
    let rules = desired_rules(&sample_snapshot(), &with_udp());
    for chain in rules.chains.iter().filter(|c| c.hook != Hook::Input) {
        assert!(
            chain.priority < -100,
            "{} at {}",
            chain.name,
            chain.priority
        );
        assert_eq!(
            chain.rules[0].then,
            Action::Return,
            "{} bypass first",
            chain.name
        );
    }
}

#[test]
fn a_redirected_syn_is_dropped_only_while_nobody_listens_on_the_proxy_port() {
    let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
    let hold: Vec<_> = rules
        .chains
        .iter()
        .filter(|c| c.hook == Hook::Input)
        .collect();
    assert_eq!(hold.len(), 1);
    let port = RuleOptions::default().tcp_port;
    let verdicts: Vec<_> = hold[0].rules.iter().map(|r| (r.when, r.then)).collect();
    assert_eq!(
        verdicts,
        [
            (
                Match::ProxySyn {
                    port,
                    listening: true
                },
                Action::Return
            ),
            (
                Match::ProxySyn {
                    port,
                    listening: false
                },
                Action::Drop
            ),
        ]
    );
}

fn fast_path_on_n1() -> RuleOptions {
    RuleOptions {
        fast_path: Some(FastPathOptions {
            local_node: Some("n1".into()),
        }),
        ..with_udp()
    }
}

#[test]
fn the_kernel_balances_what_needs_no_userspace_decision() {
    use Hook::{Output, Prerouting};
    use Protocol::Tcp;
    let rules = desired_rules(&policies_snapshot(), &fast_path_on_n1());
    #[rustfmt::skip]
    let cases: &[(&str, Packet, Verdict)] = &[
        ("round robin over local endpoints", Packet::new(Prerouting, Tcp, FAST_RR_V4, 80), Verdict::Dnat),
        ("from the host too", Packet::new(Output, Tcp, FAST_RR_V4, 80), Verdict::Dnat),
        ("random", Packet::new(Output, Tcp, FAST_RANDOM_V4, 80), Verdict::Dnat),
        ("a single endpoint", Packet::new(Output, Tcp, SINGLE_V4, 80), Verdict::Dnat),
        ("consistent hash goes to the proxy", Packet::new(Output, Tcp, HASH_V4, 80), TCP_PROXY),
        ("an endpoint on another node goes to the proxy", Packet::new(Output, Tcp, REMOTE_V4, 80), TCP_PROXY),
        ("the agent's own socket is never touched", Packet::new(Output, Tcp, FAST_RR_V4, 80).with_mark(BYPASS), Verdict::Continue),
        ("other ports are not ours", Packet::new(Output, Tcp, FAST_RR_V4, 81), Verdict::Continue),
    ];
    for (name, packet, want) in cases {
        assert_eq!(trace(&rules, packet), *want, "{name}");
    }
    let frontend = Frontend {
        ip: FAST_RR_V4,
        port: 80,
        protocol: Tcp,
    };
    let rr = &rules.fast[&frontend];
    assert_eq!(
        (
            rules.elements[&frontend].as_str(),
            rr.spread,
            rr.backends.len()
        ),
        ("fast/rr:http", Spread::RoundRobin, 2)
    );
}

#[test]
fn fast_path_frontends_stay_redirected_where_the_backend_cannot_dnat() {
    let rules = desired_rules(&policies_snapshot(), &fast_path_on_n1());
    // rr, random, single, and exposed's ClusterIP and external IP (never its node port).
    assert_eq!(rules.fast.len(), 5, "{:?}", rules.fast.keys());
    assert!(rules.fast.keys().all(|f| rules.contains(f)));
    let off = desired_rules(&policies_snapshot(), &with_udp());
    assert!(off.fast.is_empty());
    assert!(off.chains.iter().all(|c| c.hook != Hook::Postrouting));
}

proptest! {
    #[test]
    fn n_services_give_n_elements_and_constant_rules(n in 0u32..300) {
        let rules = desired_rules(&many_services(n), &RuleOptions::default());
        prop_assert_eq!(rules.elements.len(), n as usize);
        prop_assert_eq!(rules.rule_count(), 12);
    }

    #[test]
    fn every_element_is_redirected_and_nothing_else(n in 1u32..100, probe in 0u32..200) {
        let rules = desired_rules(&many_services(n), &RuleOptions::default());
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + probe));
        let got = trace(&rules, &Packet::new(Hook::Prerouting, Protocol::Tcp, ip, 80));
        let want = if probe < n { TCP_PROXY } else { Verdict::Continue };
        prop_assert_eq!(got, want);
    }
}

/// Through a random walk of changes, the rules patched for the services each Snapshot rebuilt
/// are the rules computed whole (and most Snapshots are rebuilt incrementally, or this tests
/// little).
#[test]
fn patched_rules_equal_computed_ones_through_random_changes() {
    use edgemesh_model::{BuildOptions, Catalog, ResourceKind, SourceId};
    let mut cluster = crate::fixtures::ChangingCluster::new(11);
    let mut catalog = Catalog::new();
    let relist = |catalog: &mut Catalog, cluster: &crate::fixtures::ChangingCluster| {
        for kind in ResourceKind::ALL {
            let items = cluster
                .resources()
                .into_iter()
                .filter(|r| r.reference().kind == kind)
                .collect();
            catalog.replace_kind(SourceId::Manifests, kind, items);
        }
    };
    let options = |version| BuildOptions {
        version,
        ..BuildOptions::default()
    };
    relist(&mut catalog, &cluster);
    let mut before = catalog.build_next(&Snapshot::empty(), options(1)).0;
    let mut rules = desired_rules(&before, &fast_path_on_n1());
    let mut patched = 0;
    for version in 2..300 {
        let what = cluster.change();
        relist(&mut catalog, &cluster);
        let next = catalog.build_next(&before, options(version)).0;
        let whole = desired_rules(&next, &fast_path_on_n1());
        rules = match next.changes.as_deref() {
            Some(changes) => {
                patched += 1;
                let rules = patch_rules(rules, &before, &next, changes);
                assert_eq!(rules, whole, "{what}");
                rules
            }
            None => whole,
        };
        before = next;
    }
    assert!(patched > 250, "only {patched} of 298 patched");
}
