//! Node ports and external IPs through the packet tracer: what reaches the proxy, what the
//! kernel DNATs, and what is left alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::fixtures::{
    EXPOSED_EXTERNAL_V4, EXPOSED_V4, LABELLED_NODE_PORT, SHOP_EXTERNAL_V4, SHOP_NODE_PORT_TCP,
    SHOP_NODE_PORT_UDP, policies_snapshot, sample_snapshot,
};
use crate::trace::{Packet, Verdict, trace};

const NODE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const NODE_IP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// An address of another host on the LAN.
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99));
const TCP_PROXY: Verdict = Verdict::Redirect {
    port: DEFAULT_TCP_PROXY_PORT,
};
const UDP_PROXY_PORT: u16 = 40002;

fn with_udp() -> RuleOptions {
    RuleOptions {
        udp: Some(UdpOptions {
            port: UDP_PROXY_PORT,
            mark: DEFAULT_TPROXY_MARK,
        }),
        ..RuleOptions::default()
    }
}

#[test]
fn node_ports_and_external_ips_are_traced_to_the_proxy() {
    use Hook::{Output, Prerouting};
    use Protocol::{Tcp, Udp};
    let local = |hook, protocol, ip, port| Packet::new(hook, protocol, ip, port).to_local_address();
    let udp_proxy = Verdict::Tproxy {
        port: UDP_PROXY_PORT,
    };
    #[rustfmt::skip]
    let cases: &[(&str, Packet, Verdict)] = &[
        ("node port from a LAN host", local(Prerouting, Tcp, NODE_IP, SHOP_NODE_PORT_TCP), TCP_PROXY),
        ("node port from the node itself", local(Output, Tcp, NODE_IP, SHOP_NODE_PORT_TCP), TCP_PROXY),
        ("UDP node port from a LAN host", local(Prerouting, Udp, NODE_IP, SHOP_NODE_PORT_UDP), udp_proxy),
        ("UDP node port from the node, re-routed through lo", local(Output, Udp, NODE_IP, SHOP_NODE_PORT_UDP), udp_proxy),
        ("the node port on loopback is left alone", local(Output, Tcp, LOOPBACK, SHOP_NODE_PORT_TCP), Verdict::Continue),
        ("the node port of another host is not ours", Packet::new(Prerouting, Tcp, ELSEWHERE, SHOP_NODE_PORT_TCP), Verdict::Continue),
        ("an IPv4-only service has no IPv6 node port", local(Prerouting, Tcp, NODE_IP6, SHOP_NODE_PORT_TCP), Verdict::Continue),
        ("a port that is no node port", local(Prerouting, Tcp, NODE_IP, 30081), Verdict::Continue),
        ("the node port is TCP only at this number", local(Prerouting, Udp, NODE_IP, SHOP_NODE_PORT_TCP), Verdict::Continue),
        ("a filtered service's node port is left alone", local(Prerouting, Tcp, NODE_IP, LABELLED_NODE_PORT), Verdict::Continue),
        ("the agent's own socket to a node port", local(Output, Tcp, NODE_IP, SHOP_NODE_PORT_TCP).with_mark(DEFAULT_BYPASS_MARK.value), Verdict::Continue),
        ("external IP routed via the node", Packet::new(Prerouting, Tcp, SHOP_EXTERNAL_V4, 80), TCP_PROXY),
        ("UDP to the external IP", Packet::new(Prerouting, Udp, SHOP_EXTERNAL_V4, 53), udp_proxy),
        ("another port of the external IP", Packet::new(Prerouting, Tcp, SHOP_EXTERNAL_V4, 81), Verdict::Continue),
    ];
    let rules = desired_rules(&sample_snapshot(), &with_udp());
    for (name, packet, want) in cases {
        assert_eq!(trace(&rules, packet), *want, "{name}");
    }
}

#[test]
fn without_tproxy_udp_node_ports_are_not_intercepted() {
    let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
    let packet = Packet::new(Hook::Prerouting, Protocol::Udp, NODE_IP, SHOP_NODE_PORT_UDP)
        .to_local_address();
    assert_eq!(trace(&rules, &packet), Verdict::Continue);
    let node_port = Frontend::node_port(NODE_IP, SHOP_NODE_PORT_UDP, Protocol::Udp);
    assert!(rules.not_intercepted.contains(&node_port));
}

#[test]
fn a_node_port_equal_to_the_proxy_port_is_not_intercepted() {
    let opts = RuleOptions {
        tcp_port: SHOP_NODE_PORT_TCP,
        ..RuleOptions::default()
    };
    let rules = desired_rules(&sample_snapshot(), &opts);
    let node_port = Frontend::node_port(NODE_IP, SHOP_NODE_PORT_TCP, Protocol::Tcp);
    assert!(!rules.contains(&node_port));
    assert!(rules.not_intercepted.contains(&node_port));
}

#[test]
fn the_kernel_dnats_external_ips_but_node_ports_go_to_the_proxy() {
    use Hook::Prerouting;
    use Protocol::Tcp;
    let opts = RuleOptions {
        fast_path: Some(FastPathOptions {
            local_node: Some("n1".into()),
        }),
        ..RuleOptions::default()
    };
    let rules = desired_rules(&policies_snapshot(), &opts);
    #[rustfmt::skip]
    let cases: &[(&str, Packet, Verdict)] = &[
        ("ClusterIP", Packet::new(Prerouting, Tcp, EXPOSED_V4, 80), Verdict::Dnat),
        ("external IP", Packet::new(Prerouting, Tcp, EXPOSED_EXTERNAL_V4, 80), Verdict::Dnat),
        ("node port", Packet::new(Prerouting, Tcp, NODE_IP, 30081).to_local_address(), TCP_PROXY),
    ];
    for (name, packet, want) in cases {
        assert_eq!(trace(&rules, packet), *want, "{name}");
    }
}

#[test]
fn address_and_node_port_elements_are_told_apart() {
    let rules = desired_rules(&sample_snapshot(), &with_udp());
    let node_ports: Vec<(u16, Protocol)> = rules
        .node_ports_of(IpFamily::V4, Protocol::Tcp)
        .chain(rules.node_ports_of(IpFamily::V4, Protocol::Udp))
        .map(|(f, _)| (f.port, f.protocol))
        .collect();
    assert_eq!(
        node_ports,
        [
            (SHOP_NODE_PORT_TCP, Protocol::Tcp),
            (SHOP_NODE_PORT_UDP, Protocol::Udp)
        ]
    );
    assert!(
        rules
            .elements_of(IpFamily::V4, Protocol::Tcp)
            .all(|(f, _)| !f.is_node_port())
    );
}
