//! Real-kernel tests, each in a network namespace it creates (needs root; fails, never skips,
//! without it): REDIRECT + SO_ORIGINAL_DST for TCP, TPROXY + IP_RECVORIGDSTADDR for UDP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use common::netns::Netns;
use edgemesh_host::{HostSockets, ensure_tproxy_route};
use edgemesh_model::fixtures::cluster_ip_service;
use edgemesh_model::{BuildOptions, Catalog, Protocol, Resource, SnapshotCell, SourceId};
use edgemesh_proxy::testing::FirstAvailable;
use edgemesh_proxy::udp::TproxySocket;
use edgemesh_proxy::{DEFAULT_BYPASS_MARK, DirectDialer, Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const TCP_RULES: &str = "table ip em_px_test {
  chain out {
    type nat hook output priority -100; policy accept;
    meta mark & 0x1000 == 0x1000 return
    ip daddr 10.96.0.10 tcp dport 80 redirect to :40001
  }
}";

/// TPROXY for 10.96.0.10:53/udp, also for host-originated datagrams (output marks them, the
/// policy route brings them back through prerouting).
const UDP_RULES: &str = "table ip em_px_test_udp {
  chain pre {
    type filter hook prerouting priority mangle; policy accept;
    ip daddr 10.96.0.10 udp dport 53 tproxy to :40002 meta mark set 0x2000 accept
  }
  chain out {
    type route hook output priority mangle; policy accept;
    meta mark & 0x1000 == 0x1000 return
    ip daddr 10.96.0.10 udp dport 53 meta mark set 0x2000
  }
}";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn snapshots(protocol: Protocol, port: u16) -> Arc<SnapshotCell> {
    let mut spec = cluster_ip_service("ns", "web", [10, 96, 0, 10].into(), port);
    spec.ports[0].protocol = protocol;
    let mut catalog = Catalog::new();
    catalog.upsert(SourceId::Manifests, Resource::Service(spec));
    Arc::new(SnapshotCell::new(
        catalog.build_snapshot(BuildOptions::default()).0,
    ))
}

fn proxy(protocol: Protocol, port: u16, backend: SocketAddr) -> Proxy {
    let sockets = Arc::new(HostSockets::marked(DEFAULT_BYPASS_MARK).unwrap());
    let dialer = Arc::new(DirectDialer::new(sockets.clone()));
    let balancer = Arc::new(FirstAvailable::new(vec![backend]));
    Proxy::new(
        ProxyConfig {
            sockets,
            ..ProxyConfig::default()
        },
        snapshots(protocol, port),
        balancer,
        dialer,
    )
}

async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    addr
}

#[test]
fn netns_tcp_to_cluster_ip_flows_through_the_proxy() {
    let ns = Netns::new();
    ns.nft(TCP_RULES);
    let (echoed, routed) = ns.enter(|| {
        runtime().block_on(async {
            let proxy = proxy(Protocol::Tcp, 80, tcp_echo().await);
            let listener = TcpListener::bind("0.0.0.0:40001").await.unwrap();
            let serving = proxy.clone();
            tokio::spawn(async move { serving.serve_tcp(listener).await });
            let mut client = TcpStream::connect("10.96.0.10:80").await.unwrap();
            client.write_all(b"through the proxy").await.unwrap();
            client.shutdown().await.unwrap();
            let mut echoed = Vec::new();
            let read = client.read_to_end(&mut echoed);
            tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .unwrap()
                .unwrap();
            (echoed, proxy.metrics().snapshot().routed)
        })
    });
    assert_eq!(echoed, b"through the proxy");
    assert_eq!(
        routed, 1,
        "the connection went through the proxy, not around it"
    );
}

async fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        for _ in 0..16 {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            socket.send_to(&buf[..n], from).await.unwrap();
        }
    });
    addr
}

#[test]
fn netns_udp_to_cluster_ip_is_answered_from_the_cluster_ip() {
    let ns = Netns::new();
    ns.nft(UDP_RULES);
    let (replies, sessions) = ns.enter(|| {
        runtime().block_on(async {
            // The agent's own policy route, installed by the agent's code inside the namespace.
            ensure_tproxy_route(0x2000).await.unwrap();
            let proxy = proxy(Protocol::Udp, 53, udp_echo().await);
            let socket = TproxySocket::bind(
                &HostSockets::default(),
                SocketAddrV4::new([0, 0, 0, 0].into(), 40002),
            )
            .unwrap();
            let serving = proxy.clone();
            tokio::spawn(async move { serving.serve_udp(socket).await });
            let client = UdpSocket::bind("0.0.0.0:0").await.unwrap();
            let mut replies = Vec::new();
            for i in 0..3u8 {
                client.send_to(&[b'q', i], "10.96.0.10:53").await.unwrap();
                let mut buf = [0u8; 16];
                let recv = client.recv_from(&mut buf);
                let got = tokio::time::timeout(Duration::from_secs(5), recv).await;
                let (n, from) = got
                    .unwrap_or_else(|_| panic!("no reply; {:?}", proxy.metrics().snapshot()))
                    .unwrap();
                replies.push((buf[..n].to_vec(), from));
            }
            (replies, proxy.metrics().snapshot().udp_sessions_created)
        })
    });
    let cluster_ip: SocketAddr = "10.96.0.10:53".parse().unwrap();
    for (i, (payload, from)) in replies.into_iter().enumerate() {
        assert_eq!(payload, [b'q', i as u8]);
        assert_eq!(
            from, cluster_ip,
            "the reply must come from the address the client sent to"
        );
    }
    assert_eq!(sessions, 1, "one flow, one session");
}
