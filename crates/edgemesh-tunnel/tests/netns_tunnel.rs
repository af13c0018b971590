//! The tunnel between real processes in network namespaces with real NAT routers.
//!
//! Topology: an "internet" bridge 203.0.113.0/24 with the cloud node(s) (relays); LAN A
//! 192.0.2.0/24 (a1, a2) and LAN B 198.51.100.0/24 (b1), each behind a MASQUERADE router.
//! Needs root: fails loudly otherwise.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::Process;
use edgemesh_testkit::topology::{Host, Nat, Topology};

const ECHO_TCP: &str = r#"
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(128)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

const ECHO_UDP: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(65535); s.sendto(d, a)
"#;

fn node_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .context("no target dir")?;
    let bin = profile.join("examples/tunnel-node");
    if !bin.is_file() {
        bail!(
            "{} missing: run `cargo test -p edgemesh-tunnel` (it builds examples)",
            bin.display()
        );
    }
    Ok(bin)
}

struct World {
    /// Kept alive for the test's duration (dropping it deletes the namespaces).
    _topo: Topology,
    dir: tempfile::TempDir,
    procs: Vec<Process>,
}

impl World {
    fn file(&self, name: &str, content: &str) -> Result<String> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content)?;
        Ok(path.to_string_lossy().into_owned())
    }

    fn python(&mut self, host: &Netns, script: &str, ip: &str, port: u16) -> Result<()> {
        let p = Process::start(
            "python3",
            &["-c", script, ip, &port.to_string()],
            Some(host),
        )?;
        self.procs.push(p);
        Ok(())
    }

    /// Starts a node; returns its index in `procs`.
    fn node(&mut self, host: &Netns, name: &str, psk: &str, extra: &[&str]) -> Result<usize> {
        let key = self.dir.path().join(format!("{name}.key"));
        let key = key.to_string_lossy().into_owned();
        let mut args = vec!["--node", name, "--key", &key, "--psk", psk];
        args.extend_from_slice(extra);
        let env = [("RUST_LOG", "info,libp2p_mdns=warn")];
        let mut p = Process::start_with(node_bin()?, &args, Some(host), &env)?;
        p.wait_for_log("forwarders ready", Duration::from_secs(20))?;
        self.procs.push(p);
        Ok(self.procs.len() - 1)
    }
}

struct Hosts {
    cloud: Host,
    a1: Host,
    a2: Host,
    b1: Host,
}

fn build(tag: &str, nat: Nat) -> Result<(Topology, Hosts)> {
    let mut t = Topology::new(tag)?;
    let wan = t.lan("internet")?;
    let lan_a = t.lan("a")?;
    let lan_b = t.lan("b")?;
    let cloud = t.host("cloud")?;
    t.attach(&cloud, &wan, "203.0.113.10/24")?;
    t.router("ra", &lan_a, "192.0.2.1/24", &wan, "203.0.113.2/24", nat)?;
    t.router("rb", &lan_b, "198.51.100.1/24", &wan, "203.0.113.3/24", nat)?;
    let a1 = t.host("a1")?;
    t.attach(&a1, &lan_a, "192.0.2.10/24")?;
    t.default_route(&a1, "192.0.2.1")?;
    let a2 = t.host("a2")?;
    t.attach(&a2, &lan_a, "192.0.2.11/24")?;
    t.default_route(&a2, "192.0.2.1")?;
    let b1 = t.host("b1")?;
    t.attach(&b1, &lan_b, "198.51.100.10/24")?;
    t.default_route(&b1, "198.51.100.1")?;
    Ok((t, Hosts { cloud, a1, a2, b1 }))
}

fn endpoints(node: &str, eps: &[(&str, &str)]) -> String {
    let items: Vec<String> = eps
        .iter()
        .map(|(proto, addr)| format!(r#"{{"protocol":"{proto}","addr":"{addr}","node":"{node}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// Sends `msg` through `addr` (inside `ns`) and expects it echoed.
fn tcp_echo(ns: &Netns, addr: &str, msg: &[u8]) -> Result<()> {
    let addr: SocketAddr = addr.parse()?;
    ns.run(|| -> Result<()> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got)?;
        if got != msg {
            bail!("echo mismatch");
        }
        Ok(())
    })
}

fn eventually(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        match f() {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{what}: not within {timeout:?}; last error: {last}")
}

/// Sends `count` datagrams through `addr` keeping at most 128 unanswered (a timeout counts the
/// oldest as lost); returns how many came back.
fn udp_echo(ns: &Netns, addr: &str, count: u32) -> Result<u32> {
    let addr: SocketAddr = addr.parse()?;
    ns.run(|| -> Result<u32> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.connect(addr)?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        let (mut sent, mut got, mut lost) = (0u32, 0u32, 0u32);
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(120);
        while got + lost < count && Instant::now() < deadline {
            while sent < count && sent < got + lost + 128 {
                s.send(&sent.to_be_bytes())?;
                sent += 1;
            }
            match s.recv(&mut buf) {
                Ok(_) => got += 1,
                Err(_) => lost += 1,
            }
        }
        Ok(got)
    })
}

fn peers_json(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn path_of(json: &str, node: &str) -> Option<String> {
    let peers: serde_json::Value = serde_json::from_str(json).ok()?;
    peers
        .as_array()?
        .iter()
        .find(|p| p["nodeName"] == node)
        .map(|p| p["path"].as_str().unwrap_or("").to_owned())
}

#[test]
fn netns_tunnel_paths_cone_nat() -> Result<()> {
    require_root();
    let (topo, h) = build("tc", Nat::Masquerade)?;
    let mut w = World {
        _topo: topo,
        dir: tempfile::tempdir()?,
        procs: Vec::new(),
    };
    let psk = w.file("psk", "mesh-secret")?;
    let bad_psk = w.file("bad-psk", "not-the-secret")?;
    w.python(&h.a2, ECHO_TCP, "192.0.2.11", 8080)?;
    w.python(&h.b1, ECHO_TCP, "198.51.100.10", 8080)?;
    w.python(&h.b1, ECHO_UDP, "198.51.100.10", 9053)?;
    w.python(&h.cloud, ECHO_TCP, "203.0.113.10", 8080)?;
    let ep_cloud = w.file(
        "cloud.json",
        &endpoints("cloud", &[("TCP", "203.0.113.10:8080")]),
    )?;
    let ep_a2 = w.file("a2.json", &endpoints("a2", &[("TCP", "192.0.2.11:8080")]))?;
    let ep_b1 = w.file(
        "b1.json",
        &endpoints(
            "b1",
            &[("TCP", "198.51.100.10:8080"), ("UDP", "198.51.100.10:9053")],
        ),
    )?;
    let relay = "cloud=203.0.113.10";
    w.node(
        &h.cloud,
        "cloud",
        &psk,
        &["--relay", relay, "--endpoints", &ep_cloud],
    )?;
    w.node(
        &h.a2,
        "a2",
        &psk,
        &["--relay", relay, "--endpoints", &ep_a2],
    )?;
    let b1 = w.node(
        &h.b1,
        "b1",
        &psk,
        &["--relay", relay, "--endpoints", &ep_b1],
    )?;
    w.procs[b1].wait_for_log("relay reservation accepted", Duration::from_secs(20))?;
    let peers_out = w.dir.path().join("a1-peers.json");
    let peers_arg = peers_out.to_string_lossy().into_owned();
    let a1 = w.node(
        &h.a1,
        "a1",
        &psk,
        &[
            "--relay",
            relay,
            "--peers-out",
            &peers_arg,
            "--forward",
            "127.0.0.1:7001=a2/192.0.2.11:8080",
            "--forward",
            "127.0.0.1:7002=b1/198.51.100.10:8080",
            "--forward",
            "127.0.0.1:7003=cloud/203.0.113.10:8080",
            "--forward",
            "127.0.0.1:7004=b1/198.51.100.10:9999",
            "--forward-udp",
            "127.0.0.1:7005=b1/198.51.100.10:9053",
        ],
    )?;
    let cold = eventually("a1 → a2 (same LAN)", Duration::from_secs(20), || {
        tcp_echo(&h.a1, "127.0.0.1:7001", b"hello a2")
    })?;
    eprintln!("first byte a1→a2 after {cold:?}");
    let cold_b = eventually("a1 → b1 (other LAN)", Duration::from_secs(30), || {
        tcp_echo(&h.a1, "127.0.0.1:7002", b"hello b1")
    })?;
    eprintln!("first byte a1→b1 after {cold_b:?}");
    eventually("a1 → cloud", Duration::from_secs(20), || {
        tcp_echo(&h.a1, "127.0.0.1:7003", b"hello cloud")
    })?;
    assert!(
        tcp_echo(&h.a1, "127.0.0.1:7004", b"x").is_err(),
        "a non-endpoint destination must be refused"
    );
    let logs = w.procs[a1].logs();
    assert!(
        logs.contains("refused to dial"),
        "a1 should log the refusal:\n{logs}"
    );
    let got = udp_echo(&h.a1, "127.0.0.1:7005", 100_000)?;
    eprintln!("UDP: {got} of 100000 datagrams echoed a1→b1");
    assert!(
        got >= 95_000,
        "UDP through the tunnel lost too much: {got} of 100000"
    );
    std::thread::sleep(Duration::from_secs(1));
    let json = peers_json(&peers_out);
    eprintln!("a1 /debug/peers: {json}");
    assert_eq!(
        path_of(&json, "a2").as_deref(),
        Some("direct"),
        "same LAN must be direct"
    );
    let b_path = path_of(&json, "b1");
    assert!(
        matches!(b_path.as_deref(), Some("punched" | "relayed" | "direct")),
        "{b_path:?}"
    );

    // A node with the wrong PSK cannot reach anyone.
    let evil = w.node(
        &h.a1,
        "evil",
        &bad_psk,
        &[
            "--relay",
            relay,
            "--listen-port",
            "20007",
            "--no-mdns",
            "--forward",
            "127.0.0.1:7101=a2/192.0.2.11:8080",
        ],
    )?;
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        tcp_echo(&h.a1, "127.0.0.1:7101", b"x").is_err(),
        "wrong PSK must not connect"
    );
    let _ = evil;
    Ok(())
}
