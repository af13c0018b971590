//! Issue #17 item 7: one source-address rule for both paths. An endpoint on the node's own address
//! (a hostNetwork pod) saw the client's address through the kernel fast path (DNATed to a local
//! address, the connection never passes postrouting, so the masquerade rule missed it) but the
//! node's address through the userspace proxy. docs/proxier.md promises the node's address on
//! both: the backend of a ClusterIP connection sees this node, whichever path carried it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use datapath_support::{Backend, Cluster, NODE_IP, Svc, curl_on};

const LAN_HOST_IP: &str = "192.0.2.50";
const IP: &str = "10.96.0.20";

/// What the backend on the node saw as the client's address, for a request from a LAN host
/// through the ClusterIP, with the fast path on (`true`) or off.
fn source_seen_by_a_node_endpoint(fast_path: bool, tag: &str) -> String {
    let mut cluster = Cluster::new(tag, 0);
    let lan_host = cluster.lan_host("lanhost", LAN_HOST_IP, &["10.96.0.0/12"]);
    let _server = cluster.serve_on_node();
    let svc = Svc::new("on-node", IP).endpoints(&[NODE_IP]);
    cluster.apply("on-node.yaml", &svc.yaml());
    let extra = format!("    kernelFastPath: {fast_path}\n");
    let agent = cluster.start_agent(Backend::Nftables, &extra);
    let rules = cluster.rules(Backend::Nftables);
    let fast = rules.contains(&format!("{IP} . 80 : {NODE_IP} . 8080"));
    assert_eq!(fast, fast_path, "fast path as configured:\n{rules}");
    let seen = curl_on(&lan_host, &format!("http://{IP}/peer"), &[]);
    drop(agent);
    seen.unwrap_or_else(|e| panic!("no answer through {IP}: {e}"))
}

#[test]
fn a_node_endpoint_sees_the_node_on_the_fast_path_and_through_the_proxy() {
    let kernel = source_seen_by_a_node_endpoint(true, "srcfast");
    let proxy = source_seen_by_a_node_endpoint(false, "srcprox");
    assert_eq!(proxy.trim(), NODE_IP, "through the proxy");
    assert_eq!(kernel.trim(), NODE_IP, "through the kernel fast path");
}
