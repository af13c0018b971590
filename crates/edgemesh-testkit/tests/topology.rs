//! A LAN behind a NAT router reaching a host on the "internet" side (needs root).
// Test helpers: a failed set-up step should panic with its error.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use edgemesh_testkit::netns::{list_netns, require_root};
use edgemesh_testkit::topology::{Nat, Topology};

#[test]
fn netns_topology_nat_router_rewrites_the_source() {
    require_root();
    for nat in [Nat::Masquerade, Nat::MasqueradeFullyRandom] {
        lan_host_reaches_internet_through(nat);
    }
}

fn lan_host_reaches_internet_through(nat: Nat) {
    let mut topo = Topology::new("nat").unwrap();
    let lan = topo.lan("home").unwrap();
    let wan = topo.lan("internet").unwrap();
    let router = topo
        .router("rt", &lan, "192.0.2.1/24", &wan, "203.0.113.1/24", nat)
        .unwrap();
    let laptop = topo.host("laptop").unwrap();
    topo.attach(&laptop, &lan, "192.0.2.10/24").unwrap();
    topo.default_route(&laptop, &router.lan_addr).unwrap();
    let server = topo.host("server").unwrap();
    topo.attach(&server, &wan, "203.0.113.20/24").unwrap();

    let listener = server.run(|| TcpListener::bind("203.0.113.20:0").unwrap());
    let addr = listener.local_addr().unwrap();
    laptop.run(move || {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        conn.write_all(b"hi").unwrap();
    });
    let (mut conn, peer) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 2];
    conn.read_exact(&mut buf).unwrap();
    let router_ip: std::net::IpAddr = router.wan_addr.parse().unwrap();
    assert_eq!(
        peer.ip(),
        router_ip,
        "{nat:?}: the server must see the router as source"
    );
    // The laptop's LAN address is not routable from the internet side.
    let lan_addr: SocketAddr = "192.0.2.10:9".parse().unwrap();
    let unreachable =
        server.run(move || TcpStream::connect_timeout(&lan_addr, Duration::from_secs(1)));
    assert!(unreachable.is_err());

    let names: Vec<String> = [topo.switch().name(), router.host.name(), laptop.name()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    drop((topo, router, laptop, server));
    let left = list_netns().unwrap();
    assert!(
        names.iter().all(|n| !left.contains(n)),
        "left behind: {names:?}"
    );
}

#[test]
fn netns_topology_direct_link_between_two_hosts() {
    require_root();
    let mut topo = Topology::new("lnk").unwrap();
    let a = topo.host("a").unwrap();
    let b = topo.host("b").unwrap();
    let (a_if, b_if) = topo
        .link(&a, "169.254.1.1/30", &b, "169.254.1.2/30")
        .unwrap();
    assert!(a_if.len() <= 15 && b_if.len() <= 15);
    let listener = b.run(|| TcpListener::bind("169.254.1.2:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let from = a.run(move || {
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        conn.local_addr().unwrap()
    });
    let (_conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, from);
    assert_eq!(from.ip().to_string(), "169.254.1.1");
}
