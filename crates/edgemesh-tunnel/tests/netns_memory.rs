//! Memory comes back after load (issue #17, item 10): a node's RSS after rounds of many
//! concurrent and many short tunnelled connections, once they have all closed, stays within a
//! bound of its idle baseline instead of growing round after round.
//!
//! a1 forwards 127.0.0.1:7202 to a2's echo backend (direct path, same LAN); both agents are
//! measured (a1 opens the streams, a2 accepts them and dials the backend). With glibc malloc the
//! freed memory of each round stayed resident (+31 % after two rounds); the nodes now run on
//! mimalloc (docs/benchmarks.md, "Memory after load", has the runs).

mod netns_support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, Result};
use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::topology::Nat;
use netns_support::*;

const CONCURRENT: usize = 200;
const SHORT: usize = 5000;
/// Client threads of the short connections.
const SHORT_WORKERS: usize = 8;
/// Bytes each concurrent connection echoes (enough to fill the copy buffers).
const CONCURRENT_BYTES: usize = 64 * 1024;
const ROUNDS: usize = 2;
/// How long closed connections get to be torn down on both ends before a measurement.
const SETTLE: Duration = Duration::from_secs(5);
/// Allowed growth of RSS over the idle baseline after the last round, in percent.
const MAX_GROWTH_PERCENT: u64 = 10;
/// UDP flows per round, each of `FLOW_DATAGRAMS` echoed datagrams from its own client socket.
const UDP_FLOWS: usize = 200;
const FLOW_DATAGRAMS: u32 = 20;
/// The serving side's flow idle timeout here (`udp_idle_timeout`, 60 s by default: shortened so
/// the test takes a minute, not eight), and the wait after a round for every flow to have ended.
const UDP_IDLE_TIMEOUT_SECS: &str = "5";
const UDP_FLOW_END: Duration = Duration::from_secs(8);

#[test]
fn netns_memory_returns_after_load() -> Result<()> {
    require_root();
    let (mut w, h) = World::build("tm", Nat::Masquerade)?;
    let psk = w.file("psk", "mesh-secret")?;
    w.python(&h.a2, ECHO_TCP, "192.0.2.11", 8080)?;
    let ep_a2 = w.file("a2.json", &endpoints("a2", &[("TCP", "192.0.2.11:8080")]))?;
    let a2 = w.node_serving(
        &h.a2,
        "a2",
        &psk,
        &["--udp-idle-timeout", UDP_IDLE_TIMEOUT_SECS],
        &ep_a2,
    )?;
    let a1 = w.node(
        &h.a1,
        "a1",
        &psk,
        &["--forward", "127.0.0.1:7202=a2/192.0.2.11:8080"],
    )?;
    let addr = "127.0.0.1:7202";
    // The first stream (mDNS discovery, connection, handshake) and a warm-up round of the same
    // shape at a tenth of the size, so that the baseline holds what any use allocates once.
    eventually("first echo a1→a2", Duration::from_secs(20), || {
        tcp_echo(&h.a1, addr, b"hello")
    })?;
    load_round(&h.a1, addr, CONCURRENT / 10, SHORT / 10)?;
    std::thread::sleep(SETTLE);
    let pids = [("a1", w.procs[a1].pid()), ("a2", w.procs[a2].pid())];
    let baseline = rss_all(&pids)?;
    eprintln!("baseline RSS (KiB): {baseline:?}");
    let mut after = baseline.clone();
    for round in 1..=ROUNDS {
        load_round(&h.a1, addr, CONCURRENT, SHORT)?;
        std::thread::sleep(SETTLE);
        after = rss_all(&pids)?;
        eprintln!("RSS after round {round} and {SETTLE:?} idle (KiB): {after:?}");
    }
    for (((name, _), base), now) in pids.iter().zip(&baseline).zip(&after) {
        let bound = base + base * MAX_GROWTH_PERCENT / 100;
        anyhow::ensure!(
            *now <= bound,
            "{name}: RSS {now} KiB after {ROUNDS} rounds of {CONCURRENT} concurrent + {SHORT} \
             short connections, more than {MAX_GROWTH_PERCENT} % over its baseline {base} KiB"
        );
    }
    Ok(())
}

/// The same for UDP flows, on the serving side (a2) only (the example's UDP forwarder on a1 is
/// test scaffolding). Each flow used to hold two 64 KiB receive buffers for its whole life, and
/// a2 ended 17–53 % over its baseline; flows now share one per thread.
#[test]
fn netns_memory_udp_flows_return_after_load() -> Result<()> {
    require_root();
    let (mut w, h) = World::build("tu", Nat::Masquerade)?;
    let psk = w.file("psk", "mesh-secret")?;
    w.python(&h.a2, ECHO_UDP, "192.0.2.11", 9053)?;
    let ep_a2 = w.file("a2.json", &endpoints("a2", &[("UDP", "192.0.2.11:9053")]))?;
    let a2 = w.node_serving(
        &h.a2,
        "a2",
        &psk,
        &["--udp-idle-timeout", UDP_IDLE_TIMEOUT_SECS],
        &ep_a2,
    )?;
    w.node(
        &h.a1,
        "a1",
        &psk,
        &["--forward-udp", "127.0.0.1:7205=a2/192.0.2.11:9053"],
    )?;
    let addr = "127.0.0.1:7205";
    eventually("first datagram a1→a2", Duration::from_secs(20), || {
        anyhow::ensure!(udp_echo(&h.a1, addr, 1)? == 1, "no echo");
        Ok(())
    })?;
    udp_round(&h.a1, addr, UDP_FLOWS / 10)?;
    std::thread::sleep(UDP_FLOW_END);
    let pid = w.procs[a2].pid();
    let baseline = rss_kib(pid)?;
    eprintln!("a2 baseline RSS (KiB): {baseline}");
    let mut after = baseline;
    for round in 1..=ROUNDS {
        udp_round(&h.a1, addr, UDP_FLOWS)?;
        std::thread::sleep(UDP_FLOW_END);
        after = rss_kib(pid)?;
        eprintln!("a2 RSS after UDP round {round}, flows ended (KiB): {after}");
    }
    let bound = baseline + baseline * MAX_GROWTH_PERCENT / 100;
    anyhow::ensure!(
        after <= bound,
        "a2: RSS {after} KiB after {ROUNDS} rounds of {UDP_FLOWS} UDP flows, more than \
         {MAX_GROWTH_PERCENT} % over its baseline {baseline} KiB"
    );
    Ok(())
}

/// `flows` UDP flows through `addr`, `SHORT_WORKERS` at a time, each echoing `FLOW_DATAGRAMS`.
fn udp_round(ns: &Netns, addr: &str, flows: usize) -> Result<()> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..SHORT_WORKERS)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    for _ in 0..flows / SHORT_WORKERS {
                        let got = udp_echo(ns, addr, FLOW_DATAGRAMS)?;
                        anyhow::ensure!(got > 0, "no datagram came back");
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("panic"))))
    })
}

/// `concurrent` connections open at once, each echoing `CONCURRENT_BYTES`, and while they are
/// open `short` connections each echoing a few bytes and closing; then all are closed.
fn load_round(ns: &Netns, addr: &str, concurrent: usize, short: usize) -> Result<()> {
    let addr: SocketAddr = addr.parse()?;
    let held = ns.run(|| -> Result<Vec<TcpStream>> {
        let held: Vec<TcpStream> = (0..concurrent)
            .map(|i| connect(addr).with_context(|| format!("concurrent connection {i}")))
            .collect::<Result<_>>()?;
        let payload = vec![0x5au8; CONCURRENT_BYTES];
        // All written first, so that the streams carry data at the same time.
        for mut s in &held {
            s.write_all(&payload)?;
        }
        let mut got = vec![0u8; CONCURRENT_BYTES];
        for (i, mut s) in held.iter().enumerate() {
            s.read_exact(&mut got)
                .with_context(|| format!("echo on concurrent connection {i}"))?;
        }
        Ok(held)
    })?;
    ns.run(|| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..SHORT_WORKERS)
                .map(|_| scope.spawn(|| short_connections(addr, short / SHORT_WORKERS)))
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("panic"))))
        })
    })?;
    drop(held);
    Ok(())
}

fn short_connections(addr: SocketAddr, n: usize) -> Result<()> {
    let mut b = [0u8; 5];
    for i in 0..n {
        let mut s = connect(addr).with_context(|| format!("short connection {i}"))?;
        s.write_all(b"short")?;
        s.read_exact(&mut b)
            .with_context(|| format!("echo on short connection {i}"))?;
    }
    Ok(())
}

fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(s)
}

fn rss_all(pids: &[(&str, u32)]) -> Result<Vec<u64>> {
    pids.iter().map(|(_, pid)| rss_kib(*pid)).collect()
}
