//! Issue acceptance (ClusterIP data path): HTTP, HTTPS, TCP echo, UDP echo and WebSocket from
//! the node to a ClusterIP reach a real pod through the real agent, with both backends, and with
//! nftables both through the kernel fast path (default) and through the userspace proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use datapath_support::{Backend, Cluster, ECHO, HTTP, HTTPS, Svc, UDP, WS};

const IP: &str = "10.96.0.10";

/// Where the agent sends the TCP kinds.
#[derive(Clone, Copy, PartialEq)]
enum TcpPath {
    KernelFastPath,
    Proxy,
}

fn every_kind_through_the_agent(backend: Backend, tcp_path: TcpPath, tag: &str) {
    let cluster = Cluster::new(tag, 1);
    let web = Svc::new("web", IP)
        .ports(&[HTTP, HTTPS, ECHO, UDP, WS])
        .endpoints(&cluster.pod_ips());
    cluster.apply("web.yaml", &web.yaml());
    let extra = match tcp_path {
        TcpPath::KernelFastPath => "",
        TcpPath::Proxy => "    kernelFastPath: false\n",
    };
    let agent = cluster.start_agent(backend, extra);

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
    // Both backends TPROXY UDP: the reply comes from the ClusterIP:port the client sent to.
    let answer = cluster.udp_echo(IP, 7001, "datagram");
    assert_eq!(answer.as_deref(), Ok("datagram from 10.96.0.10:7001"));
    assert!(agent.metric("edgemesh_proxy_udp_sessions_total") >= 1.0);
    let accepted = agent.metric("edgemesh_proxy_tcp_accepted_total");
    let in_kernel = agent.metric("edgemesh_proxier_fast_path_frontends");
    match tcp_path {
        TcpPath::KernelFastPath => assert!(
            in_kernel == 4.0 && accepted == 0.0,
            "4 TCP ports DNATed by the kernel ({in_kernel}), none through the proxy ({accepted})"
        ),
        TcpPath::Proxy => assert!(
            in_kernel == 0.0 && accepted >= 4.0,
            "4 TCP kinds went through the proxy ({accepted}), none in the kernel ({in_kernel})"
        ),
    }
}

#[test]
fn agent_datapath_serves_every_kind_with_nftables() {
    every_kind_through_the_agent(Backend::Nftables, TcpPath::KernelFastPath, "dpk-nft");
}

#[test]
fn agent_datapath_serves_every_kind_with_nftables_through_the_proxy() {
    every_kind_through_the_agent(Backend::Nftables, TcpPath::Proxy, "dpk-nfp");
}

#[test]
fn agent_datapath_serves_every_kind_with_iptables() {
    // iptables has no fast path: the default config proxies everything.
    every_kind_through_the_agent(Backend::Iptables, TcpPath::Proxy, "dpk-ipt");
}
