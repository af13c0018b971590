//! Issue #17, item 1: the SOCKS5 proxy (no authentication, and it reaches every node of the
//! mesh) listens on 169.254.96.16:10800, which Linux accepts from any interface: a LAN host that
//! routed that address via the node, holding no PSK, reached a port on a node behind another NAT.
//! Only the node's own processes may use it now.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod metrics_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::Process;
use edgemesh_testkit::topology::Topology;

const SOCKS5: &str = "169.254.96.16:10800";

/// The SOCKS5 greeting (version 5, one method: no authentication) and the server's answer:
/// `Some([5, 0])` from a server that takes the client, `None` when it closes the connection.
fn greet(ns: &Netns) -> Option<Vec<u8>> {
    ns.run(|| {
        let addr: SocketAddr = SOCKS5.parse().unwrap();
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(&[5, 1, 0]).ok()?;
        let mut answer = [0u8; 2];
        match stream.read(&mut answer) {
            Ok(2) => Some(answer.to_vec()),
            _ => None,
        }
    })
}

#[test]
fn agent_socks5_serves_only_the_node_itself() {
    require_root();
    let mut topology = Topology::new("socks").unwrap();
    let node = topology.host("node").unwrap();
    let neighbour = topology.host("lan").unwrap();
    topology
        .link(&node, "198.51.100.1/24", &neighbour, "198.51.100.7/24")
        .unwrap();
    topology
        .route(&neighbour, "169.254.96.16/32", "198.51.100.1")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("psk");
    std::fs::write(&psk, "a pre-shared key\n").unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "modules:\n  edgeDNS:\n    enable: false\n  edgeProxy:\n    enable: false\n    \
             socks5Proxy:\n      enable: true\n  edgeTunnel:\n    enable: true\n    psk:\n      \
             path: {}\n",
            psk.display()
        ),
    )
    .unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let args = [
        "agent",
        "--config",
        config.to_str().unwrap(),
        "--manifests",
        manifests.path().to_str().unwrap(),
        "--admin-addr",
        "127.0.0.1:0",
        "--node-name",
        "node-a",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ];
    let mut agent =
        Process::start(env!("CARGO_BIN_EXE_edgemesh"), &args, Some(node.netns())).unwrap();
    agent
        .wait_for_log("SOCKS5 proxy serving", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.logs()));

    assert_eq!(greet(node.netns()), Some(vec![5, 0]), "{}", agent.logs());
    assert_eq!(greet(neighbour.netns()), None, "a LAN neighbour was served");
    assert!(
        agent
            .logs()
            .contains("SOCKS5 refused: only this node's own processes"),
        "{}",
        agent.logs()
    );

    // Issue #13: with the tunnel on, /metrics carries its peers by path kind (none here), and
    // /debug/peers its JSON view, both from one refresher.
    let admin = agent.admin_addr(Duration::from_secs(5)).unwrap();
    let scraped = metrics_support::scrape(node.netns(), admin);
    for path in ["direct", "punched", "relayed"] {
        let labels = [("path", path)];
        assert_eq!(
            scraped.value("edgemesh_tunnel_peers", "gauge", &labels),
            0.0
        );
        assert_eq!(
            scraped.value("edgemesh_tunnel_streams_open", "gauge", &labels),
            0.0
        );
    }
    let (status, body) = agent.http_get("/debug/peers").unwrap();
    assert_eq!((status, body.trim()), (200, "[]"));
}
