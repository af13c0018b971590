//! Helpers of the namespace tests: the topology, node processes, echo backends, probes.
// Shared by the netns test binaries, each using a subset.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use edgemesh_testkit::netns::Netns;
use edgemesh_testkit::process::Process;
use edgemesh_testkit::topology::{Host, Nat, Router, Topology};

pub const ECHO_TCP: &str = r#"
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

pub const ECHO_UDP: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(65535); s.sendto(d, a)
"#;

pub fn node_bin() -> Result<PathBuf> {
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

pub struct World {
    /// Kept alive for the test's duration (dropping it deletes the namespaces).
    pub _topo: Topology,
    pub dir: tempfile::TempDir,
    pub procs: Vec<Process>,
}

/// With TUNNEL_TEST_KEEP_LOGS=DIR, each node's output is copied to DIR when the test ends.
impl Drop for World {
    fn drop(&mut self) {
        let Ok(dir) = std::env::var("TUNNEL_TEST_KEEP_LOGS") else {
            return;
        };
        for (i, p) in self.procs.iter().enumerate() {
            let _ = std::fs::create_dir_all(&dir);
            // Named by test process too: tests run in parallel.
            let name = format!("{}-proc-{i}.log", std::process::id());
            let _ = std::fs::copy(p.log_path(), Path::new(&dir).join(name));
        }
    }
}

impl World {
    /// A fresh topology (namespace names tagged `tag`, routers doing `nat`) with no process yet.
    pub fn build(tag: &str, nat: Nat) -> Result<(World, Hosts)> {
        let (topo, hosts) = build(tag, nat)?;
        let world = World {
            _topo: topo,
            dir: tempfile::tempdir()?,
            procs: Vec::new(),
        };
        Ok((world, hosts))
    }

    pub fn file(&self, name: &str, content: &str) -> Result<String> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content)?;
        Ok(path.to_string_lossy().into_owned())
    }

    pub fn python(&mut self, host: &Netns, script: &str, ip: &str, port: u16) -> Result<()> {
        let p = Process::start(
            "python3",
            &["-c", script, ip, &port.to_string()],
            Some(host),
        )?;
        self.procs.push(p);
        Ok(())
    }

    /// Starts a node; returns its index in `procs`.
    pub fn node(&mut self, host: &Netns, name: &str, psk: &str, extra: &[&str]) -> Result<usize> {
        self.node_keyed(host, name, name, psk, extra)
    }

    /// Like [`World::node`], serving the endpoints listed in the file `endpoints`.
    pub fn node_serving(
        &mut self,
        host: &Netns,
        name: &str,
        psk: &str,
        args: &[&str],
        endpoints: &str,
    ) -> Result<usize> {
        self.node(
            host,
            name,
            psk,
            &[args, &["--endpoints", endpoints]].concat(),
        )
    }

    /// Like [`World::node`] with the identity key kept under `key_name` (an impostor of a node
    /// has its own key).
    pub fn node_keyed(
        &mut self,
        host: &Netns,
        name: &str,
        key_name: &str,
        psk: &str,
        extra: &[&str],
    ) -> Result<usize> {
        let key = self.dir.path().join(format!("{key_name}.key"));
        let key = key.to_string_lossy().into_owned();
        let mut args = vec!["--node", name, "--key", &key, "--psk", psk];
        args.extend_from_slice(extra);
        // TUNNEL_TEST_LOG overrides the filter (e.g. `info,libp2p_dcutr=debug` to study punches).
        let filter = std::env::var("TUNNEL_TEST_LOG").unwrap_or("info,libp2p_mdns=warn".into());
        let env = [("RUST_LOG", filter.as_str())];
        let mut p = Process::start_with(node_bin()?, &args, Some(host), &env)?;
        p.wait_for_log("forwarders ready", Duration::from_secs(20))?;
        self.procs.push(p);
        Ok(self.procs.len() - 1)
    }
}

pub struct Hosts {
    pub cloud: Host,
    /// A second cloud node (203.0.113.11), for relay failover.
    pub cloud2: Host,
    pub a1: Host,
    pub a2: Host,
    /// A third LAN A host, for outsiders (another PSK, another PSK mode).
    pub a3: Host,
    pub b1: Host,
    /// LAN A's router.
    pub ra: Router,
}

fn build(tag: &str, nat: Nat) -> Result<(Topology, Hosts)> {
    let mut t = Topology::new(tag)?;
    let wan = t.lan("internet")?;
    let lan_a = t.lan("a")?;
    let lan_b = t.lan("b")?;
    let cloud = t.host("cloud")?;
    t.attach(&cloud, &wan, "203.0.113.10/24")?;
    let cloud2 = t.host("cloud2")?;
    t.attach(&cloud2, &wan, "203.0.113.11/24")?;
    let ra = t.router("ra", &lan_a, "192.0.2.1/24", &wan, "203.0.113.2/24", nat)?;
    let rb = t.router("rb", &lan_b, "198.51.100.1/24", &wan, "203.0.113.3/24", nat)?;
    home_router_firewall(&ra)?;
    home_router_firewall(&rb)?;
    let a1 = t.host("a1")?;
    t.attach(&a1, &lan_a, "192.0.2.10/24")?;
    t.default_route(&a1, "192.0.2.1")?;
    let a2 = t.host("a2")?;
    t.attach(&a2, &lan_a, "192.0.2.11/24")?;
    t.default_route(&a2, "192.0.2.1")?;
    let a3 = t.host("a3")?;
    t.attach(&a3, &lan_a, "192.0.2.12/24")?;
    t.default_route(&a3, "192.0.2.1")?;
    let b1 = t.host("b1")?;
    t.attach(&b1, &lan_b, "198.51.100.10/24")?;
    t.default_route(&b1, "198.51.100.1")?;
    Ok((
        t,
        Hosts {
            cloud,
            cloud2,
            a1,
            a2,
            a3,
            b1,
            ra,
        },
    ))
}

/// What a home router does with an unsolicited connection from the internet: drop it. (Without
/// this the router's own stack answers a SYN to its WAN address with a RST, and that RST kills
/// the other side's simultaneous-open attempt: no TCP hole punch could ever succeed.)
fn home_router_firewall(router: &Router) -> Result<()> {
    let rules = format!(
        "table inet home_fw {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    iifname \"{}\" ct state new drop\n  }}\n}}\n",
        router.wan_if
    );
    nft_load(&router.host, &rules).context("home router firewall")
}

/// Makes `router` drop what it forwards to `ip` (no direct path there) until [`unblock`].
pub fn block_forwarding_to(router: &Router, ip: &str) -> Result<()> {
    let rules = format!(
        "table inet test_block {{\n  chain block_forward {{\n    type filter hook forward priority 0; policy accept;\n    ip daddr {ip} drop\n  }}\n}}\n"
    );
    nft_load(&router.host, &rules).context("block rule")
}

/// Removes the rule of [`block_forwarding_to`].
pub fn unblock(router: &Router) -> Result<()> {
    router
        .host
        .exec_ok("nft", &["delete", "table", "inet", "test_block"])
        .context("unblock")?;
    Ok(())
}

/// Makes `host` drop every packet to and from `ip`, with no RST, FIN or ICMP: a cable cut, as
/// its sockets see it. Each cut is its own table (`test_cut_N`, N = the last octet of `ip`).
pub fn cut_silently(host: &Netns, ip: &str) -> Result<()> {
    let table = cut_table(ip);
    let rules = format!(
        "table inet {table} {{\n  chain cut_in {{\n    type filter hook input priority -10; policy accept;\n    ip saddr {ip} drop\n  }}\n  chain cut_out {{\n    type filter hook output priority -10; policy accept;\n    ip daddr {ip} drop\n  }}\n}}\n"
    );
    nft_load(host, &rules).context("cut rule")
}

fn cut_table(ip: &str) -> String {
    format!("test_cut_{}", ip.rsplit('.').next().unwrap_or("x"))
}

/// Counts, inside `host`, the TCP packets it receives from `ip` ([`packets_from`] reads it).
pub fn count_packets_from(host: &Netns, ip: &str) -> Result<()> {
    let rules = format!(
        "table inet test_count {{\n  chain count_in {{\n    type filter hook input priority -20; policy accept;\n    ip saddr {ip} meta l4proto tcp counter\n  }}\n}}\n"
    );
    nft_load(host, &rules).context("counter rule")
}

/// The packets counted by [`count_packets_from`] so far.
pub fn packets_from(host: &Netns) -> Result<u64> {
    let listing = host.exec_ok("nft", &["list", "table", "inet", "test_count"])?;
    let count = listing
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .context("no counter in the listing")?;
    Ok(count.parse()?)
}

/// A bridge inside `host` with `gateway` on it, as a CNI plugin makes (`cni0`).
pub fn cni_bridge(host: &Netns, gateway: &str) -> Result<()> {
    host.exec_ok("ip", &["link", "add", "cni0", "type", "bridge"])?;
    host.exec_ok(
        "ip",
        &["addr", "add", &format!("{gateway}/24"), "dev", "cni0"],
    )?;
    host.exec_ok("ip", &["link", "set", "cni0", "up"])?;
    Ok(())
}

/// Loads the nftables `rules` inside `host`.
fn nft_load(host: &Netns, rules: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("rules.nft");
    std::fs::write(&path, rules)?;
    host.exec_ok("nft", &["-f", &path.to_string_lossy()])?;
    Ok(())
}

pub fn endpoints(node: &str, eps: &[(&str, &str)]) -> String {
    let items: Vec<String> = eps
        .iter()
        .map(|(proto, addr)| format!(r#"{{"protocol":"{proto}","addr":"{addr}","node":"{node}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// Sends `msg` through `addr` (inside `ns`) and expects it echoed.
pub fn tcp_echo(ns: &Netns, addr: &str, msg: &[u8]) -> Result<()> {
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

pub fn eventually(
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
pub fn udp_echo(ns: &Netns, addr: &str, count: u32) -> Result<u32> {
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

pub fn peers_json(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn path_of(json: &str, node: &str) -> Option<String> {
    field_of(json, node, "path")
}

/// `tcp` or `quic`: the transport of the path `/debug/peers` reports for `node`.
pub fn transport_of(json: &str, node: &str) -> Option<String> {
    field_of(json, node, "transport")
}

fn field_of(json: &str, node: &str, field: &str) -> Option<String> {
    let peers: serde_json::Value = serde_json::from_str(json).ok()?;
    peers
        .as_array()?
        .iter()
        .find(|p| p["nodeName"] == node)
        .map(|p| p[field].as_str().unwrap_or("").to_owned())
}

/// Waits until `/debug/peers` (written to `peers_out`) shows `node` on `path` over `transport`.
pub fn wait_path(
    peers_out: &Path,
    node: &str,
    path: &str,
    transport: &str,
    timeout: Duration,
) -> Result<Duration> {
    eventually(&format!("{node}: {path} over {transport}"), timeout, || {
        let json = peers_json(peers_out);
        let seen = (path_of(&json, node), transport_of(&json, node));
        anyhow::ensure!(
            seen.0.as_deref() == Some(path) && seen.1.as_deref() == Some(transport),
            "{seen:?} in {json}"
        );
        Ok(())
    })
}

/// Runs the `quic-probe` example (an outsider with stock libp2p QUIC) against `addr`.
pub fn quic_probe(ns: &Netns, addr: &str) -> Result<String> {
    let bin = node_bin()?.with_file_name("quic-probe");
    let out = ns.exec(&bin.to_string_lossy(), &[addr])?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until `needle` appears in `count` log lines of `proc`.
pub fn wait_log_count(proc: &Process, needle: &str, count: usize, timeout: Duration) -> Result<()> {
    eventually(&format!("{count}× {needle:?}"), timeout, || {
        let seen = proc.logs().matches(needle).count();
        if seen >= count {
            Ok(())
        } else {
            bail!("seen {seen}")
        }
    })
    .map(drop)
    .with_context(|| proc.logs())
}

/// `echo msg | ncat --proxy-type socks5 --proxy PROXY HOST PORT` inside `ns`: what ncat printed,
/// or an error with its stderr (ncat's exit status says whether the proxy refused).
pub fn ncat_socks5(ns: &Netns, proxy: &str, host: &str, port: u16, msg: &str) -> Result<String> {
    let port = port.to_string();
    let mut child = ns
        .command("timeout")
        .args(["10", "ncat", "--proxy-type", "socks5", "--proxy", proxy])
        .args(["--proxy-dns", "remote", host, &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("ncat")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(msg.as_bytes())?;
    } // dropped: EOF, ncat half-closes, the echo server closes, ncat exits
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "ncat to {host}:{port} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where `node`'s connections at this observer go (remote addresses from `/debug/peers`).
pub fn addresses_of(json: &str, node: &str) -> Vec<String> {
    let Ok(peers) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let Some(peers) = peers.as_array() else {
        return Vec::new();
    };
    peers
        .iter()
        .filter(|p| p["nodeName"] == node)
        .flat_map(|p| p["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// A TCP connection kept open inside a namespace (the socket is created there and stays usable
/// from any thread).
pub struct LongLived(TcpStream);

impl LongLived {
    pub fn open(ns: &Netns, addr: &str) -> Result<LongLived> {
        let addr: SocketAddr = addr.parse()?;
        let s = ns.run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let ll = LongLived(s);
        ll.check(b"first")?;
        Ok(ll)
    }

    /// Sends `msg` and expects it echoed.
    pub fn check(&self, msg: &[u8]) -> Result<()> {
        let mut s = &self.0;
        s.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got)
            .context("the long-lived stream was cut")?;
        anyhow::ensure!(got == msg, "echo mismatch");
        Ok(())
    }
}

/// VmRSS of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    edgemesh_telemetry::status_bytes(pid, "VmRSS")
        .map(|bytes| bytes / 1024)
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}
