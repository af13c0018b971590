//! Real-kernel tests, each in a network namespace it creates (needs root; fails, never skips,
//! without it). Addresses: 10.96.0.0/12 made local inside the namespace only.

// Helpers below are test code: a failed step panics with its error.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::{Landed, Netns, connect_and_see, listen};
use edgemesh_model::{Frontend, Protocol};
use edgemesh_netfilter::fixtures::{WEB_V4, policies_snapshot, sample_snapshot};
use edgemesh_netfilter::iptables::order::{CONTAINER_CHAIN, HOST_CHAIN};
use edgemesh_netfilter::{
    DEFAULT_BYPASS_MARK, FastPathOptions, IpFamily, IptablesBackend, NftBackend, RuleBackend,
    RuleOptions, RuleSet, desired_rules,
};

const WEB: &str = "10.96.0.10:80";
const DNS_TCP: &str = "10.96.0.53:53";

fn sample_rules() -> RuleSet {
    desired_rules(&sample_snapshot(), &RuleOptions::default())
}

fn without_web(mut rules: RuleSet) -> RuleSet {
    let web = Frontend {
        ip: WEB_V4,
        port: 80,
        protocol: Protocol::Tcp,
    };
    assert!(rules.elements.remove(&web).is_some());
    rules
}

/// A namespace where 10.96.0.0/12 is routable (REDIRECT on output needs a route first).
fn cluster_ns() -> Netns {
    let ns = Netns::new();
    ns.exec(
        "ip",
        &["route", "add", "local", "10.96.0.0/12", "dev", "lo"],
    );
    ns
}

/// Where a connection to `target` from inside `ns` lands, with a proxy listening on 40001 and the
/// "real" destination on port 80.
fn probe(ns: &Netns, target: &str, mark: u32) -> Landed {
    probe_with_direct_port(ns, target, mark, 80)
}

/// [`probe`] with the "real" destination listening on `direct_port`.
fn probe_with_direct_port(ns: &Netns, target: &str, mark: u32, direct_port: u16) -> Landed {
    let target: SocketAddr = target.parse().unwrap();
    ns.enter(move || {
        let proxy = listen("0.0.0.0:40001");
        let direct = listen(&format!("0.0.0.0:{direct_port}"));
        connect_and_see(target, mark, &proxy, &direct)
    })
}

fn proxied(target: &str) -> Landed {
    Landed::Proxy {
        original_dst: target.parse().unwrap(),
    }
}

/// kube-proxy-style DNAT of the web ClusterIP to 127.0.0.1:80, jumped from nat OUTPUT first.
fn install_kube_proxy(ns: &Netns) {
    let rules = "*nat\n:KUBE-SERVICES - [0:0]\n\
        -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:80\n\
        -I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
        -I OUTPUT 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
        COMMIT\n";
    ns.runner()
        .run("iptables-restore", &["--noflush"], Some(rules))
        .unwrap();
}

fn nft_table(ns: &Netns) -> String {
    ns.exec("nft", &["list", "tables"])
}

#[test]
fn nft_installs_replaces_and_cleans_up() {
    let ns = cluster_ns();
    let mut backend = NftBackend::new(ns.runner());
    let stats = backend.apply(sample_rules()).unwrap();
    // web (v4, v6), dns-tcp, and shop's ClusterIP, external IP and node port.
    assert_eq!(stats.frontends, 6);
    backend.apply(sample_rules()).unwrap();
    let listed = backend.list().unwrap();
    assert!(listed.contains("10.96.0.10 . tcp . 80"), "{listed}");
    assert!(listed.contains("fd00:10:96::a . tcp . 80"), "{listed}");
    assert!(listed.contains("fib daddr type local"), "{listed}");
    assert_eq!(
        listed.matches("chain nat_prerouting").count(),
        1,
        "{listed}"
    );

    backend.apply(without_web(sample_rules())).unwrap();
    let listed = backend.list().unwrap();
    assert!(!listed.contains("10.96.0.10 ."), "{listed}");
    assert!(listed.contains("10.96.0.53 . tcp . 53"), "{listed}");

    backend.cleanup().unwrap();
    assert!(!nft_table(&ns).contains("edgemesh"));
    backend.cleanup().unwrap();
}

#[test]
fn nft_redirects_ahead_of_kube_proxy_and_spares_marked_sockets() {
    let ns = cluster_ns();
    install_kube_proxy(&ns);
    assert_eq!(probe(&ns, WEB, 0), Landed::Direct, "kube-proxy DNAT alone");
    let mut backend = NftBackend::new(ns.runner());
    backend.apply(sample_rules()).unwrap();
    assert_eq!(probe(&ns, WEB, 0), proxied(WEB));
    assert_eq!(probe(&ns, DNS_TCP, 0), proxied(DNS_TCP));
    assert_eq!(probe(&ns, WEB, DEFAULT_BYPASS_MARK.value), Landed::Direct);
    backend.apply(without_web(sample_rules())).unwrap();
    assert_eq!(probe(&ns, WEB, 0), Landed::Direct);
    backend.cleanup().unwrap();
    assert_eq!(probe(&ns, DNS_TCP, 0), Landed::Refused);
}

/// The sample's node port (`default/shop`), and the labelled service's.
const NODE_PORT: &str = "192.0.2.1:30080";
const FILTERED_NODE_PORT: &str = "192.0.2.1:30910";
const NODE_PORT_ON_LOOPBACK: &str = "127.0.0.1:30080";
const EXTERNAL_IP: &str = "198.51.100.10:80";

/// Node ports are redirected at the node's own address, not on loopback nor for a filtered
/// service; an external IP (routable, not local) is redirected like a ClusterIP.
fn node_ports_land_on_the_proxy<B: RuleBackend>(backend_in: impl FnOnce(&Netns) -> B) {
    let ns = cluster_ns();
    // A veth pair inside the namespace: the node's LAN interface (no dummy module here).
    ns.exec(
        "ip",
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "lan0",
        ],
    );
    ns.exec("ip", &["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    ns.exec("ip", &["link", "set", "eth0", "up"]);
    ns.exec("ip", &["link", "set", "lan0", "up"]);
    ns.exec("ip", &["route", "add", "198.51.100.0/24", "dev", "eth0"]);
    let mut backend = backend_in(&ns);
    backend.apply(sample_rules()).unwrap();
    // The "real" destination listens at the probed port.
    let probe = |target: &str, mark| {
        let port = target.parse::<SocketAddr>().unwrap().port();
        probe_with_direct_port(&ns, target, mark, port)
    };
    assert_eq!(probe(NODE_PORT, 0), proxied(NODE_PORT));
    assert_eq!(probe(NODE_PORT_ON_LOOPBACK, 0), Landed::Direct);
    assert_eq!(probe(FILTERED_NODE_PORT, 0), Landed::Direct);
    assert_eq!(probe(EXTERNAL_IP, 0), proxied(EXTERNAL_IP));
    let marked = probe(NODE_PORT, DEFAULT_BYPASS_MARK.value);
    assert_eq!(marked, Landed::Direct, "the agent's own sockets");
    backend.cleanup().unwrap();
    assert_eq!(probe(NODE_PORT, 0), Landed::Direct);
}

#[test]
fn nft_redirects_node_ports_at_local_addresses_only() {
    node_ports_land_on_the_proxy(|ns| NftBackend::new(ns.runner()));
}

#[test]
fn iptables_redirects_node_ports_at_local_addresses_only() {
    node_ports_land_on_the_proxy(|ns| IptablesBackend::with_families(ns.runner(), &[IpFamily::V4]));
}

fn save(ns: &Netns, family: IpFamily) -> String {
    let tool = if family == IpFamily::V4 {
        "iptables-save"
    } else {
        "ip6tables-save"
    };
    ns.exec(tool, &["-t", "nat"])
}

/// The targets of a base chain's rules, in order.
fn jump_order(save: &str, base: &str) -> Vec<String> {
    let prefix = format!("-A {base} ");
    save.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|spec| {
            spec.split(" -j ")
                .nth(1)
                .map(|t| t.split(' ').next().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn iptables_installs_replaces_and_cleans_up() {
    let ns = cluster_ns();
    let mut backend = IptablesBackend::new(ns.runner());
    backend.apply(sample_rules()).unwrap();
    let stats = backend.apply(sample_rules()).unwrap();
    assert!(!stats.order_repaired);
    for family in [IpFamily::V4, IpFamily::V6] {
        let saved = save(&ns, family);
        assert_eq!(
            jump_order(&saved, "PREROUTING"),
            [CONTAINER_CHAIN],
            "{saved}"
        );
        assert_eq!(jump_order(&saved, "OUTPUT"), [HOST_CHAIN], "{saved}");
    }
    let v4 = save(&ns, IpFamily::V4);
    assert!(v4.contains("-d 10.96.0.10/32"), "{v4}");
    // web, dns-tcp, and shop's ClusterIP, external IP and node port; in both chains.
    assert_eq!(v4.matches("-j REDIRECT").count(), 10, "{v4}");
    assert!(save(&ns, IpFamily::V6).contains("-d fd00:10:96::a/128"));

    backend.apply(without_web(sample_rules())).unwrap();
    let v4 = save(&ns, IpFamily::V4);
    assert!(!v4.contains("10.96.0.10"), "{v4}");
    assert_eq!(v4.matches("-j REDIRECT").count(), 8, "{v4}");

    backend.cleanup().unwrap();
    for family in [IpFamily::V4, IpFamily::V6] {
        let saved = save(&ns, family);
        assert!(!saved.contains("KUBE-PORTALS"), "{saved}");
    }
    backend.cleanup().unwrap();
}

#[test]
fn iptables_repairs_order_after_kube_proxy_prepends() {
    let ns = cluster_ns();
    let mut backend = IptablesBackend::new(ns.runner());
    backend.apply(sample_rules()).unwrap();
    assert_eq!(probe(&ns, WEB, 0), proxied(WEB));
    assert_eq!(probe(&ns, WEB, DEFAULT_BYPASS_MARK.value), Landed::Direct);

    install_kube_proxy(&ns);
    let saved = save(&ns, IpFamily::V4);
    assert_eq!(jump_order(&saved, "OUTPUT"), ["KUBE-SERVICES", HOST_CHAIN]);
    assert_eq!(
        probe(&ns, WEB, 0),
        Landed::Direct,
        "kube-proxy won while out of order"
    );

    assert!(
        backend.check_and_repair_order().unwrap(),
        "a repair was due"
    );
    let saved = save(&ns, IpFamily::V4);
    assert_eq!(
        jump_order(&saved, "PREROUTING"),
        [CONTAINER_CHAIN, "KUBE-SERVICES"]
    );
    assert_eq!(jump_order(&saved, "OUTPUT"), [HOST_CHAIN, "KUBE-SERVICES"]);
    assert_eq!(probe(&ns, WEB, 0), proxied(WEB));
    assert!(
        !backend.check_and_repair_order().unwrap(),
        "nothing left to repair"
    );

    backend.cleanup().unwrap();
    let saved = save(&ns, IpFamily::V4);
    assert_eq!(jump_order(&saved, "OUTPUT"), ["KUBE-SERVICES"], "{saved}");
}

#[test]
fn iptables_sync_itself_restores_order() {
    let ns = cluster_ns();
    let mut backend = IptablesBackend::new(ns.runner());
    backend.apply(sample_rules()).unwrap();
    install_kube_proxy(&ns);
    let stats = backend.apply(sample_rules()).unwrap();
    assert!(stats.order_repaired);
    let saved = save(&ns, IpFamily::V4);
    assert_eq!(jump_order(&saved, "OUTPUT"), [HOST_CHAIN, "KUBE-SERVICES"]);
}

/// kube-proxy-style UDP DNAT of the DNS ClusterIP, and the agent's policy route for TPROXY.
fn udp_setup(ns: &Netns) {
    let rules = "*nat\n:KUBE-SERVICES - [0:0]\n\
        -A KUBE-SERVICES -d 10.96.0.53/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.0.0.1:53\n\
        -I PREROUTING 1 -j KUBE-SERVICES\n-I OUTPUT 1 -j KUBE-SERVICES\nCOMMIT\n";
    ns.runner()
        .run("iptables-restore", &["--noflush"], Some(rules))
        .unwrap();
    // The agent's own policy route, installed by the agent's code inside the namespace.
    ns.enter(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(edgemesh_host::ensure_tproxy_route(
                edgemesh_netfilter::DEFAULT_TPROXY_MARK,
            ))
    })
    .unwrap();
}

/// Sends one datagram to 10.96.0.53:53 from inside `ns`; true when the transparent socket on
/// 40002 got it, false when the socket on port 53 (kube-proxy's DNAT target) did.
fn udp_lands_on_tproxy(ns: &Netns) -> bool {
    use socket2::{Domain, Socket, Type};
    use std::net::UdpSocket;
    use std::time::Duration;
    ns.enter(|| {
        let transparent = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        transparent.set_ip_transparent_v4(true).unwrap();
        let any: SocketAddr = "0.0.0.0:40002".parse().unwrap();
        transparent.bind(&any.into()).unwrap();
        let transparent: UdpSocket = transparent.into();
        let direct = UdpSocket::bind("0.0.0.0:53").unwrap();
        for socket in [&transparent, &direct] {
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
        }
        let client = UdpSocket::bind("0.0.0.0:0").unwrap();
        client.send_to(b"q", "10.96.0.53:53").unwrap();
        let mut buf = [0u8; 8];
        if transparent.recv_from(&mut buf).is_ok() {
            return true;
        }
        assert!(
            direct.recv_from(&mut buf).is_ok(),
            "the datagram reached neither socket"
        );
        false
    })
}

/// Host-sent UDP to a ClusterIP reaches the transparent socket although a kube-proxy DNAT for
/// it is installed; after cleanup kube-proxy gets it again.
fn udp_tproxy_wins_over_kube_proxy_dnat<B: RuleBackend>(backend_in: impl FnOnce(&Netns) -> B) {
    let ns = cluster_ns();
    udp_setup(&ns);
    assert!(!udp_lands_on_tproxy(&ns), "kube-proxy DNAT alone");
    let opts = RuleOptions {
        udp: Some(edgemesh_netfilter::UdpOptions {
            port: 40002,
            mark: edgemesh_netfilter::DEFAULT_TPROXY_MARK,
        }),
        ..RuleOptions::default()
    };
    let mut backend = backend_in(&ns);
    let rules = desired_rules(&sample_snapshot(), &opts);
    backend.apply(rules.clone()).unwrap();
    backend.apply(rules).unwrap();
    assert!(udp_lands_on_tproxy(&ns), "host-originated UDP is TPROXYed");
    backend.cleanup().unwrap();
    assert!(
        !udp_lands_on_tproxy(&ns),
        "after cleanup kube-proxy gets it again"
    );
}

#[test]
fn nft_udp_tproxy_wins_over_kube_proxy_dnat() {
    udp_tproxy_wins_over_kube_proxy_dnat(|ns| NftBackend::new(ns.runner()));
}

#[test]
fn iptables_udp_tproxy_wins_over_kube_proxy_dnat() {
    udp_tproxy_wins_over_kube_proxy_dnat(|ns| {
        IptablesBackend::with_families(ns.runner(), &[IpFamily::V4])
    });
}

/// A sync without UDP removes the UDP chains an earlier run left (they would send UDP to a
/// port nobody listens on), and one jump per base chain is kept across syncs.
#[test]
fn iptables_udp_chains_are_kept_single_and_removed_when_udp_is_off() {
    let ns = cluster_ns();
    let udp = RuleOptions {
        udp: Some(edgemesh_netfilter::UdpOptions {
            port: 40002,
            mark: edgemesh_netfilter::DEFAULT_TPROXY_MARK,
        }),
        ..RuleOptions::default()
    };
    let mut backend = IptablesBackend::with_families(ns.runner(), &[IpFamily::V4]);
    backend
        .apply(desired_rules(&sample_snapshot(), &udp))
        .unwrap();
    backend
        .apply(desired_rules(&sample_snapshot(), &udp))
        .unwrap();
    let mangle = ns.exec("iptables-save", &["-t", "mangle"]);
    assert_eq!(
        jump_order(&mangle, "PREROUTING"),
        ["EDGEMESH-UDP-CONTAINER"],
        "{mangle}"
    );
    assert_eq!(mangle.matches("-j TPROXY").count(), 4, "{mangle}");
    let mut restarted = IptablesBackend::with_families(ns.runner(), &[IpFamily::V4]);
    restarted.apply(sample_rules()).unwrap();
    for table in ["raw", "mangle"] {
        let saved = ns.exec("iptables-save", &["-t", table]);
        assert!(!saved.contains("EDGEMESH-UDP"), "{saved}");
    }
}

/// Kernel fast path: round robin is DNATed by the kernel itself, alternating exactly between the
/// two endpoints, a one-endpoint service goes through the DNAT map; a consistent-hash service
/// still reaches the proxy port.
#[test]
fn nft_fast_path_dnats_round_robin_in_the_kernel() {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    let ns = cluster_ns();
    for ip in ["192.0.2.11/32", "192.0.2.12/32"] {
        ns.exec("ip", &["addr", "add", ip, "dev", "lo"]);
    }
    let opts = RuleOptions {
        fast_path: Some(FastPathOptions {
            local_node: Some("n1".into()),
        }),
        ..RuleOptions::default()
    };
    let rules = desired_rules(&policies_snapshot(), &opts);
    let stats = NftBackend::new(ns.runner()).apply(rules).unwrap();
    // + fast/exposed: ClusterIP and external IP in the kernel, node port proxied.
    assert_eq!((stats.frontends, stats.fast_path), (8, 5));

    let landed: Vec<String> = ns.enter(|| {
        let serve = |addr: &str| {
            let listener = TcpListener::bind(addr).unwrap();
            let name = addr.to_string();
            std::thread::spawn(move || {
                for stream in listener.incoming().take(8) {
                    use std::io::Write;
                    let _ = stream.unwrap().write_all(name.as_bytes());
                }
            });
        };
        serve("192.0.2.11:8080");
        serve("192.0.2.12:8080");
        let fetch = |target: &str| {
            let mut reply = String::new();
            let mut stream = TcpStream::connect(target).unwrap();
            stream.read_to_string(&mut reply).unwrap();
            reply
        };
        let single = fetch("10.96.1.5:80");
        assert_eq!(
            single, "192.0.2.11:8080",
            "one backend: the DNAT map, no chain"
        );
        (0..6).map(|_| fetch("10.96.1.1:80")).collect()
    });
    let first = landed.iter().filter(|l| *l == &landed[0]).count();
    assert_eq!(first, 3, "round robin over two endpoints: {landed:?}");
    assert!(landed.windows(2).all(|w| w[0] != w[1]), "{landed:?}");
    assert_eq!(
        probe(&ns, "10.96.1.3:80", 0),
        proxied("10.96.1.3:80"),
        "consistent hash stays with the proxy"
    );
}

/// Two namespaces joined by a veth: `node` (192.0.2.1, the rules, the client) and `pod`
/// (192.0.2.11, the backend), as in scripts/bench-datapath.sh.
fn node_and_pod() -> (Netns, Netns) {
    let (node, pod) = (Netns::new(), Netns::new());
    node.exec(
        "ip",
        &[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            pod.name(),
        ],
    );
    for (ns, addr) in [(&node, "192.0.2.1/24"), (&pod, "192.0.2.11/24")] {
        ns.exec("ip", &["addr", "add", addr, "dev", "eth0"]);
        ns.exec("ip", &["link", "set", "eth0", "up"]);
    }
    node.exec("ip", &["route", "add", "10.96.0.0/12", "dev", "eth0"]);
    (node, pod)
}

/// One counter of `nstat` inside `ns` (absolute; `-s` leaves the shared history file alone).
fn nstat(ns: &Netns, name: &str) -> u64 {
    let out = ns.exec("nstat", &["-saz", name]);
    out.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

/// With `monotonicTcpTimestamps`, a node that reaches a backend directly and then through a
/// fast-path ClusterIP (same client address, a 1,000-port range so every port is reused while
/// the backend holds it in TIME_WAIT) never has a SYN refused by that TIME_WAIT: no PAWS
/// rejection at the backend, no SYN retransmit, no connect slower than 500 ms. Without it the
/// ClusterIP SYNs carry timestamps from another per-connection offset and some are refused
/// (docs/benchmarks.md, "New connections on the kernel path").
#[test]
fn nft_fast_path_new_connections_pass_the_backends_time_wait() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    const PER_TARGET: usize = 2000;
    let (node, pod) = node_and_pod();
    node.exec(
        "sysctl",
        &["-qw", "net.ipv4.ip_local_port_range=41000 41999"],
    );
    let changed = node.enter(edgemesh_netfilter::timestamps::make_monotonic);
    assert_eq!(
        changed.unwrap(),
        edgemesh_netfilter::timestamps::Timestamps::Changed
    );
    let opts = RuleOptions {
        fast_path: Some(FastPathOptions {
            local_node: Some("n1".into()),
        }),
        ..RuleOptions::default()
    };
    NftBackend::new(node.runner())
        .apply(desired_rules(&policies_snapshot(), &opts))
        .unwrap();

    // The backend closes first, so the TIME_WAIT is on its side, as with a real server.
    let listener = pod.enter(|| listen("192.0.2.11:8080"));
    listener.set_nonblocking(false).unwrap(); // `listen` is for polling probes
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2 * PER_TARGET) {
            let _ = stream.unwrap().write_all(b"x");
        }
    });
    let worst = node.enter(|| {
        let mut worst = Duration::ZERO;
        // 10.96.1.5:80 is the one-endpoint fast-path service on 192.0.2.11:8080.
        for target in ["192.0.2.11:8080", "10.96.1.5:80"] {
            for _ in 0..PER_TARGET {
                let started = Instant::now();
                let timeout = Duration::from_secs(5);
                let mut stream =
                    TcpStream::connect_timeout(&target.parse().unwrap(), timeout).unwrap();
                worst = worst.max(started.elapsed());
                let mut reply = Vec::new();
                stream.read_to_end(&mut reply).unwrap();
                assert_eq!(reply, b"x");
            }
        }
        worst
    });
    let refused = nstat(&pod, "TcpExtPAWSTimewait");
    let retransmits = nstat(&node, "TcpExtTCPSynRetrans");
    assert_eq!(
        (refused, retransmits),
        (0, 0),
        "SYNs refused by TIME_WAIT at the backend, SYN retransmits at the client"
    );
    assert!(
        worst < Duration::from_millis(500),
        "slowest connect {worst:?}"
    );
}
