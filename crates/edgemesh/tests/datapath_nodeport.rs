//! Issue acceptance (NodePort and externalIPs): a host on the LAN, outside the cluster, reaches
//! the endpoints through the node's address at a node port and through an external IP routed via
//! the node, TCP and UDP, with the real agent and both backends; a filtered service's node port
//! is left alone; `externalTrafficPolicy: Local` picks only this node's endpoints for that
//! traffic (and refuses it when there are none) while ClusterIP traffic still uses them all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use datapath_support::{Backend, Cluster, HTTP, NODE_IP, Svc, UDP, curl_on, tally, udp_echo_on};
use edgemesh_testkit::topology::enable_forwarding;
use serde_json::json;

/// The LAN host: not a node, not a pod; it only knows the node's address.
const LAN_HOST_IP: &str = "192.0.2.50";
/// External IPs of `web` (all endpoints here) and `local` (`externalTrafficPolicy: Local`).
const WEB_EXTERNAL_IP: &str = "198.51.100.10";
const LOCAL_EXTERNAL_IP: &str = "198.51.100.11";
const WEB_NODE_PORT: u16 = 30080;
const WEB_UDP_NODE_PORT: u16 = 30071;
const LOCAL_NODE_PORT: u16 = 30081;
const NONE_LOCAL_NODE_PORT: u16 = 30082;
const FILTERED_NODE_PORT: u16 = 30090;
const FILTER_LABEL: &str = "service.edgemesh.kubeedge.io/service-proxy-name";

/// pod-a runs on this node, pod-b on "other-node" (reachable directly: no tunnel here).
fn services(cluster: &Cluster) {
    let (pod_a, pod_b) = (cluster.pods[0].ip.as_str(), cluster.pods[1].ip.as_str());
    let web = Svc::new("web", "10.96.0.10")
        .ports(&[HTTP, UDP])
        .node_port(HTTP, WEB_NODE_PORT)
        .node_port(UDP, WEB_UDP_NODE_PORT)
        .spec("externalIPs", json!([WEB_EXTERNAL_IP]))
        .endpoints(&[pod_a]);
    let local = Svc::new("local", "10.96.0.11")
        .node_port(HTTP, LOCAL_NODE_PORT)
        .spec("externalIPs", json!([LOCAL_EXTERNAL_IP]))
        .spec("externalTrafficPolicy", json!("Local"))
        .endpoints(&[pod_a])
        .remote_endpoint(pod_b, "other-node");
    let none_local = Svc::new("none-local", "10.96.0.12")
        .node_port(HTTP, NONE_LOCAL_NODE_PORT)
        .spec("externalTrafficPolicy", json!("Local"))
        .remote_endpoint(pod_b, "other-node");
    let filtered = Svc::new("filtered", "10.96.0.13")
        .node_port(HTTP, FILTERED_NODE_PORT)
        .label(FILTER_LABEL, "kube-proxy")
        .endpoints(&[pod_a]);
    for svc in [web, local, none_local, filtered] {
        cluster.apply(&format!("{}.yaml", svc.name()), &svc.yaml());
    }
}

fn node_port_and_external_ip_from_a_lan_host(backend: Backend, tag: &str) {
    let mut cluster = Cluster::new(tag, 2);
    let lan_host = cluster.lan_host("lanhost", LAN_HOST_IP, &["198.51.100.0/24"]);
    // A Kubernetes node forwards; the kernel fast path DNATs web's external IP to pod-a.
    enable_forwarding(cluster.node.netns()).unwrap();
    services(&cluster);
    let agent = cluster.start_agent(backend, "");
    let rules = cluster.rules(backend);
    let url = |host: &str, port: u16| format!("http://{host}:{port}/");

    // TCP: the node's address at the node port, from the LAN host and from the node itself,
    // and the external IP routed via the node.
    let answers = [
        curl_on(&lan_host, &url(NODE_IP, WEB_NODE_PORT), &[]),
        cluster.curl(&url(NODE_IP, WEB_NODE_PORT), &[]),
        curl_on(&lan_host, &url(WEB_EXTERNAL_IP, 80), &[]),
    ];
    for answer in &answers {
        assert_eq!(
            answer.as_deref(),
            Ok("pod-a"),
            "{answers:?}\n--- rules:\n{rules}\n--- agent log:\n{}",
            agent.logs()
        );
    }

    // A filtered service's node port is not intercepted: nothing listens there, so the kernel
    // refuses the connection (curl exit 7; the proxy would have accepted, then reset: 52/56).
    let filtered = curl_on(&lan_host, &url(NODE_IP, FILTERED_NODE_PORT), &[]);
    let refused = filtered
        .as_ref()
        .expect_err("the filtered node port must not answer");
    assert!(refused.contains("exit status: 7"), "{refused}");
    assert!(!rules.contains(&FILTERED_NODE_PORT.to_string()), "{rules}");

    // externalTrafficPolicy: Local: traffic by node port or external IP only reaches pod-a ...
    let mut external = Vec::new();
    for _ in 0..4 {
        external.push(curl_on(&lan_host, &url(NODE_IP, LOCAL_NODE_PORT), &[]).unwrap());
        external.push(curl_on(&lan_host, &url(LOCAL_EXTERNAL_IP, 80), &[]).unwrap());
    }
    assert_eq!(tally(&external), [("pod-a".to_string(), 8)].into());
    // ... while ClusterIP traffic from the node uses both endpoints (round robin).
    let inside = cluster.curl_many("http://10.96.0.11/", 4, &[]);
    assert_eq!(
        tally(&inside),
        [("pod-a".to_string(), 2), ("pod-b".to_string(), 2)].into()
    );
    // ... and with no endpoint on this node, node-port traffic is refused.
    let none_local = curl_on(&lan_host, &url(NODE_IP, NONE_LOCAL_NODE_PORT), &[]);
    assert!(none_local.is_err(), "{none_local:?}");
    assert!(agent.metric("edgemesh_proxy_tcp_no_endpoint_total") >= 1.0);

    // The kernel fast path (nftables) DNATs web's ClusterIP and external IP (round robin, only
    // local endpoints); node ports always go through the proxy.
    let in_kernel = agent.metric("edgemesh_proxier_fast_path_frontends");
    let want = if backend == Backend::Nftables {
        2.0
    } else {
        0.0
    };
    assert_eq!(in_kernel, want, "fast-path frontends");

    // UDP through TPROXY (both backends): the reply comes from the address the client used.
    let by_node_port = udp_echo_on(&lan_host, NODE_IP, WEB_UDP_NODE_PORT, "datagram");
    let from_node_port = format!("datagram from {NODE_IP}:{WEB_UDP_NODE_PORT}");
    assert_eq!(by_node_port.as_deref(), Ok(from_node_port.as_str()));
    let by_external_ip = udp_echo_on(&lan_host, WEB_EXTERNAL_IP, 7001, "datagram");
    let from_external_ip = format!("datagram from {WEB_EXTERNAL_IP}:7001");
    assert_eq!(by_external_ip.as_deref(), Ok(from_external_ip.as_str()));
}

#[test]
fn node_port_and_external_ip_reach_the_endpoints_with_nftables() {
    node_port_and_external_ip_from_a_lan_host(Backend::Nftables, "dnp-nft");
}

#[test]
fn node_port_and_external_ip_reach_the_endpoints_with_iptables() {
    node_port_and_external_ip_from_a_lan_host(Backend::Iptables, "dnp-ipt");
}
