//! The copier A/B on loopback TCP: ours (growing buffers, splice, adaptive) against tokio's
//! `copy_bidirectional_with_sizes` with fixed buffers (what the proxy's copy mode used before).
//!
//! `cargo bench -p edgemesh-copy --bench copy [MiB] [round trips]` (defaults 256 and 300).
//! - bulk: one connection, client → copy → sink, MiB/s (best of 3);
//! - rr: 64 connections at once, each doing round trips of a 100-byte request and a 4 KiB
//!   answer through the copy, round trips per second (best of 3).
//!
//! `cargo bench -p edgemesh-copy --bench copy -- rss ours|tokio [connections]` (default 1,000):
//! the process's resident memory before and after that many connections each moved 1 MiB
//! through the copy and then went idle (one mode per process, so the modes do not share heaps).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edgemesh_copy::{Options, adaptive_both_ways, both_ways, splice_both_ways};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug)]
enum Mode {
    Ours,
    OursSplice,
    OursAdaptive,
    Tokio(usize),
}

/// A copy in front of `target`: every connection accepted is copied to a new one to `target`.
async fn copy_to(target: SocketAddr, mode: Mode) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut up = TcpStream::connect(target).await.unwrap();
                let _ = match mode {
                    Mode::Ours => both_ways(&mut client, &mut up, &(), Options::default())
                        .await
                        .map(drop)
                        .map_err(std::io::Error::from),
                    Mode::OursSplice => {
                        splice_both_ways(&mut client, &mut up, &(), Options::default())
                            .await
                            .map(drop)
                            .map_err(std::io::Error::from)
                    }
                    Mode::OursAdaptive => {
                        adaptive_both_ways(&mut client, &mut up, &(), Options::default())
                            .await
                            .map(drop)
                            .map_err(std::io::Error::from)
                    }
                    Mode::Tokio(size) => {
                        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut up, size, size)
                            .await
                            .map(drop)
                    }
                };
            });
        }
    });
    addr
}

async fn bulk(mode: Mode, bytes: u64) -> Duration {
    let (sink_addr, sink) = edgemesh_testkit::tcp::counting_sink().await.unwrap();
    let mut client = TcpStream::connect(copy_to(sink_addr, mode).await)
        .await
        .unwrap();
    let chunk = vec![7u8; 256 * 1024];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        client.write_all(&chunk).await.unwrap();
        sent += chunk.len() as u64;
    }
    client.shutdown().await.unwrap();
    assert_eq!(sink.await.unwrap().unwrap(), sent);
    start.elapsed()
}

const CONNECTIONS: usize = 64;

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut request, answer) = ([0u8; 100], [1u8; 4096]);
                while s.read_exact(&mut request).await.is_ok() {
                    s.write_all(&answer).await.unwrap();
                }
            });
        }
    });
    addr
}

async fn request_response(mode: Mode, rounds: usize) -> Duration {
    let entry = copy_to(echo_server().await, mode).await;
    let start = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = TcpStream::connect(entry).await.unwrap();
                c.set_nodelay(true).unwrap();
                let mut answer = [0u8; 4096];
                for _ in 0..rounds {
                    c.write_all(&[2u8; 100]).await.unwrap();
                    c.read_exact(&mut answer).await.unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    start.elapsed()
}

fn best_of_3(run: impl Fn() -> Duration) -> Duration {
    (0..3).map(|_| run()).min().unwrap_or_default()
}

/// Resident set size of this process in KiB.
fn rss_kib() -> u64 {
    edgemesh_telemetry::self_status_bytes("VmRSS").expect("VmRSS in /proc/self/status") / 1024
}

/// Echoes every connection back to itself.
async fn bulk_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Opens `n` connections through the copy, moves 1 MiB each way through each, leaves them idle.
async fn idle_rss(mode: Mode, n: usize) {
    let entry = copy_to(bulk_echo_server().await, mode).await;
    let before = rss_kib();
    let mut idle = Vec::with_capacity(n);
    let mib = vec![5u8; 1024 * 1024];
    for _ in 0..n {
        let c = TcpStream::connect(entry).await.unwrap();
        let (mut r, mut w) = c.into_split();
        let sent = mib.clone();
        let writing = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w
        });
        let mut back = vec![0u8; mib.len()];
        r.read_exact(&mut back).await.unwrap();
        idle.push((r, writing.await.unwrap()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!(
        "{mode:?}: {n} idle connections: RSS {before} KiB -> {after} KiB, {:.1} KiB per \
         connection; our copies hold {} bytes of buffer",
        (after.saturating_sub(before)) as f64 / n as f64,
        edgemesh_copy::held_buffer_bytes()
    );
}

/// Request/response only, ours and tokio's 256 KiB copy taking turns (a loaded machine drifts:
/// turns keep the comparison fair).
fn alternate(rounds: usize) {
    let rt = edgemesh_testkit::tcp::bench_runtime().unwrap();
    for turn in 0..5 {
        let rate = |mode| {
            let wall = rt.block_on(request_response(mode, rounds));
            (CONNECTIONS * rounds) as f64 / wall.as_secs_f64()
        };
        let (ours, tokio) = (rate(Mode::Ours), rate(Mode::Tokio(256 * 1024)));
        println!("turn {turn}: rr/s ours {ours:.0}, tokio 256 KiB {tokio:.0}");
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let first = args.next();
    if first.as_deref() == Some("rss") {
        let mode = match args.next().as_deref() {
            Some("tokio") => Mode::Tokio(256 * 1024),
            _ => Mode::Ours,
        };
        let n = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(idle_rss(mode, n));
        return;
    }
    if first.as_deref() == Some("ab") {
        let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
        return alternate(rounds);
    }
    let mut args = first.into_iter().chain(args);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let rt = edgemesh_testkit::tcp::bench_runtime().unwrap();
    let modes = [
        ("ours (copy, 1 KiB → 256 KiB)", Mode::Ours),
        ("ours (splice)", Mode::OursSplice),
        ("ours (adaptive: copy → splice)", Mode::OursAdaptive),
        ("tokio 256 KiB (old proxy copy)", Mode::Tokio(256 * 1024)),
        ("tokio 16 KiB (old tunnel size)", Mode::Tokio(16 * 1024)),
    ];
    println!(
        "{:<32} {:>12} {:>16}",
        "mode",
        format!("bulk MiB/s ({mib} MiB)"),
        format!("rr/s ({CONNECTIONS}×{rounds})")
    );
    for (name, mode) in modes {
        let bytes = mib * 1024 * 1024;
        let wall = best_of_3(|| rt.block_on(bulk(mode, bytes)));
        let rr = best_of_3(|| rt.block_on(request_response(mode, rounds)));
        println!(
            "{name:<32} {:>12.0} {:>16.0}",
            mib as f64 / wall.as_secs_f64(),
            (CONNECTIONS * rounds) as f64 / rr.as_secs_f64()
        );
    }
}
