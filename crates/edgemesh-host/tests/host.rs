//! The host seam against the real kernel: the options [`HostSockets`] sets, read back with
//! getsockopt, and the TPROXY route installed inside a fresh network namespace, read back with
//! `ip`. Needs root (SO_MARK, IP_TRANSPARENT, namespaces); fails otherwise.

// Test helpers below panic on failure on purpose: that is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use edgemesh_host::{
    HostSockets, Keepalive, SocketFactory, TPROXY_TABLE, TRANSPARENT_RECEIVE_BUFFER,
    UPSTREAM_RECEIVE_BUFFER, ensure_bridge_device, ensure_tproxy_route, keep_alive,
    remove_bridge_device, remove_tproxy_route,
};
use edgemesh_testkit::netns::{Netns, require_root};
use socket2::SockRef;

const MARK: u32 = 0x1000;
const TPROXY_MARK: u32 = 0x2000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn dialing_sockets_carry_the_mark_and_nodelay() {
    require_root();
    let rt = runtime();
    let _entered = rt.enter();
    let sockets = HostSockets::marked(MARK).unwrap();
    for socket in [sockets.new_tcp_v4().unwrap(), sockets.new_tcp_v6().unwrap()] {
        assert_eq!(SockRef::from(&socket).mark().unwrap(), MARK);
        assert!(socket.nodelay().unwrap());
    }
    let udp = sockets.udp_connect("127.0.0.1:9".parse().unwrap()).unwrap();
    assert_eq!(SockRef::from(&udp).mark().unwrap(), MARK);
    // The kernel doubles what it is given (bookkeeping), past rmem_max with CAP_NET_ADMIN.
    assert_eq!(
        SockRef::from(&udp).recv_buffer_size().unwrap(),
        2 * UPSTREAM_RECEIVE_BUFFER
    );
    assert_eq!(
        udp.peer_addr().unwrap(),
        "127.0.0.1:9".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn keep_alive_sets_the_four_options_the_kernel_probes_with() {
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (client, (accepted, _)) = (client.unwrap(), accepted.unwrap());
        assert!(
            !SockRef::from(&accepted).keepalive().unwrap(),
            "off by default"
        );
        let params = Keepalive::RELAYED;
        for stream in [&client, &accepted] {
            keep_alive(stream, params).unwrap();
            let sock = SockRef::from(stream);
            assert!(sock.keepalive().unwrap());
            assert_eq!(sock.tcp_keepalive_time().unwrap(), params.idle);
            assert_eq!(sock.tcp_keepalive_interval().unwrap(), params.interval);
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), params.count);
        }
        assert_eq!(params.dead_after(), std::time::Duration::from_secs(120));
    });
}

#[test]
fn unmarked_factory_and_listeners_set_no_mark() {
    require_root();
    let rt = runtime();
    let _entered = rt.enter();
    let plain = HostSockets::default();
    let socket = plain.new_tcp_v4().unwrap();
    assert_eq!(SockRef::from(&socket).mark().unwrap(), 0);
    assert!(socket.nodelay().unwrap());

    // A mark on a listener would be inherited by every accepted connection: never set.
    let marked = HostSockets::marked(MARK).unwrap();
    let listener = marked.tcp_bind("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(SockRef::from(&listener).mark().unwrap(), 0);
    assert!(SockRef::from(&listener).reuse_address().unwrap());
    let udp = marked.udp_bind("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(SockRef::from(&udp).mark().unwrap(), 0);
}

#[test]
fn transparent_socket_is_transparent_and_binds_a_foreign_address() {
    require_root();
    let rt = runtime();
    let _entered = rt.enter();
    let sockets = HostSockets::marked(MARK).unwrap();
    // 192.0.2.1 (TEST-NET-1) is not this host's: only IP_TRANSPARENT allows binding it.
    let v4 = sockets
        .udp_transparent("192.0.2.1:5300".parse().unwrap())
        .unwrap();
    let v4 = SockRef::from(&v4);
    assert!(v4.ip_transparent_v4().unwrap());
    assert!(v4.reuse_address().unwrap());
    assert_eq!(v4.mark().unwrap(), 0);
    assert_eq!(
        v4.recv_buffer_size().unwrap(),
        2 * TRANSPARENT_RECEIVE_BUFFER
    );
    let v6 = sockets.udp_transparent("[::1]:0".parse().unwrap()).unwrap();
    assert!(SockRef::from(&v6).ip_transparent_v6().unwrap());
}

#[test]
fn mark_zero_needs_no_privilege() {
    assert_eq!(HostSockets::marked(0).unwrap(), HostSockets::default());
    assert_eq!(HostSockets::marked(MARK).map(|s| s.mark()).ok(), {
        nix::unistd::geteuid().is_root().then_some(MARK)
    });
}

/// Runs `f` on a thread inside `ns` with a runtime of its own (netlink sockets are opened in
/// the calling thread's namespace).
fn in_ns<T: Send>(ns: &Netns, f: impl AsyncFnOnce() -> T + Send) -> T {
    ns.run(|| runtime().block_on(f()))
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn netns_tproxy_route_is_installed_once_and_removed() {
    require_root();
    let ns = Netns::new("host-route").unwrap();
    in_ns(&ns, async || {
        ensure_tproxy_route(TPROXY_MARK).await.unwrap();
        ensure_tproxy_route(TPROXY_MARK).await.unwrap();
    });
    let rules = ns.exec_ok("ip", &["rule", "show"]).unwrap();
    let rule = format!("fwmark {TPROXY_MARK:#x} lookup {TPROXY_TABLE}");
    assert_eq!(count(&rules, &rule), 1, "{rules}");
    let table = TPROXY_TABLE.to_string();
    let routes = ns
        .exec_ok("ip", &["route", "show", "table", &table])
        .unwrap();
    assert_eq!(count(&routes, "local default dev lo"), 1, "{routes}");

    in_ns(&ns, async || {
        remove_tproxy_route(TPROXY_MARK).await.unwrap();
        remove_tproxy_route(TPROXY_MARK).await.unwrap();
    });
    let rules = ns.exec_ok("ip", &["rule", "show"]).unwrap();
    assert_eq!(count(&rules, "fwmark"), 0, "{rules}");
    let routes = ns
        .exec_ok("ip", &["route", "show", "table", &table])
        .unwrap();
    assert_eq!(count(&routes, "local default"), 0, "{routes}");
    // The local table's own routes are left alone.
    let local = ns
        .exec_ok("ip", &["route", "show", "table", "local"])
        .unwrap();
    assert!(local.contains("127.0.0.0/8"), "{local}");
}

#[test]
fn netns_bridge_device_is_made_once_and_only_ours_removed() {
    require_root();
    let ns = Netns::new("host-dev").unwrap();
    let ip = "169.254.96.16".parse().unwrap();
    let (first, again) = in_ns(&ns, async || {
        let first = ensure_bridge_device("edgemesh0", ip, 32).await.unwrap();
        let again = ensure_bridge_device("edgemesh0", ip, 32).await.unwrap();
        (first, again)
    });
    assert!(first.created && first.address_added, "{first:?}");
    assert!(
        !again.created && !again.address_added && again.index == first.index,
        "{again:?}"
    );
    let shown = ns.exec_ok("ip", &["addr", "show", "edgemesh0"]).unwrap();
    assert!(
        shown.contains("169.254.96.16/32") && shown.contains("UP"),
        "{shown}"
    );
    let invalid = in_ns(&ns, async || ensure_bridge_device("bad name", ip, 32).await);
    assert!(invalid.is_err());

    let other = "192.0.2.1".parse().unwrap();
    let (someone_elses, ours, gone) = in_ns(&ns, async || {
        (
            remove_bridge_device("edgemesh0", other).await.unwrap(),
            remove_bridge_device("edgemesh0", ip).await.unwrap(),
            remove_bridge_device("edgemesh0", ip).await.unwrap(),
        )
    });
    assert!(!someone_elses && ours && !gone);
}
