//! Issue acceptance (ClusterIP data path): HTTP, HTTPS, TCP echo, UDP echo and WebSocket from
//! the node to a ClusterIP reach a real pod through the real agent, with both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use std::time::Duration;

use datapath_support::{Backend, Cluster, ECHO, HTTP, HTTPS, Svc, UDP, WS};

const IP: &str = "10.96.0.10";

fn every_kind_through_the_agent(backend: Backend, tag: &str) {
    let cluster = Cluster::new(tag, 1);
    let web = Svc::new("web", IP)
        .ports(&[HTTP, HTTPS, ECHO, UDP, WS])
        .endpoints(&cluster.pod_ips());
    cluster.apply("web.yaml", &web.yaml());
    let mut agent = cluster.start_agent(backend, "");

    // Nothing but the agent answers 10.96.0.10 in the node (the LAN has no such host).
    assert_eq!(
        cluster.curl(&format!("http://{IP}/"), &[]).as_deref(),
        Ok("pod-a")
    );
    assert_eq!(
        cluster.curl(&format!("https://{IP}/"), &[]).as_deref(),
        Ok("pod-a")
    );
    let message = "hello through edgemesh\nsecond line\n";
    assert_eq!(cluster.tcp_echo(IP, 7000, message).as_deref(), Ok(message));
    assert_eq!(
        cluster.ws_echo(IP, 8765, "ping").as_deref(),
        Ok("pod-a:ping")
    );
    match backend {
        Backend::Nftables => {
            // The reply comes from the ClusterIP:port the client sent to (TPROXY path).
            let answer = cluster.udp_echo(IP, 7001, "datagram");
            assert_eq!(answer.as_deref(), Ok("datagram from 10.96.0.10:7001"));
            assert!(agent.metric("edgemesh_proxy_udp_sessions_total") >= 1.0);
        }
        Backend::Iptables => {
            let line = agent.wait_log("UDP services are not intercepted", Duration::from_secs(5));
            assert!(line.contains("iptables"), "{line}");
            // Not intercepted: the datagram goes to the LAN where nobody has the ClusterIP.
            assert!(cluster.udp_echo(IP, 7001, "datagram").is_err());
        }
    }
    let accepted = agent.metric("edgemesh_proxy_tcp_accepted_total");
    assert!(
        accepted >= 4.0,
        "4 TCP kinds went through the proxy, counted {accepted}"
    );
}

#[test]
fn agent_datapath_serves_every_kind_with_nftables() {
    every_kind_through_the_agent(Backend::Nftables, "dpk-nft");
}

#[test]
fn agent_datapath_serves_every_kind_with_iptables() {
    every_kind_through_the_agent(Backend::Iptables, "dpk-ipt");
}
