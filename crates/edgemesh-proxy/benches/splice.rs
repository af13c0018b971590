//! Relay throughput and CPU on loopback: splice vs user-space copies.
//!
//! `cargo bench -p edgemesh-proxy --bench splice` (optional argument: MiB per run, default 512).
//! Each run pushes the bytes client → relay → sink in one direction. CPU is the whole process
//! (client + relay + sink); the `direct` row (no relay) is the baseline to subtract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use edgemesh_proxy::relay::relay;
use edgemesh_proxy::{Metrics, RelayMode, Upstream};
use nix::sys::resource::{UsageWho, getrusage};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug)]
enum Mode {
    Direct,
    Ours(RelayMode),
    TokioCopy(usize),
}

fn cpu() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_SELF).unwrap();
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

async fn relay_to(target: std::net::SocketAddr, mode: Mode) -> std::net::SocketAddr {
    if let Mode::Direct = mode {
        return target;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.unwrap();
        let mut up = TcpStream::connect(target).await.unwrap();
        match mode {
            Mode::Ours(m) => {
                let metrics = Metrics::default();
                relay(
                    client,
                    &[],
                    Upstream::Tcp(up),
                    m,
                    None,
                    (&metrics, &Default::default()),
                )
                .await
                .unwrap();
            }
            Mode::TokioCopy(size) => {
                tokio::io::copy_bidirectional_with_sizes(&mut client, &mut up, size, size)
                    .await
                    .unwrap();
            }
            Mode::Direct => {}
        }
    });
    addr
}

async fn run(mode: Mode, bytes: u64) -> (Duration, Duration) {
    let (sink_addr, sink_task) = edgemesh_testkit::tcp::counting_sink().await.unwrap();
    let entry = relay_to(sink_addr, mode).await;
    let mut client = TcpStream::connect(entry).await.unwrap();
    let chunk = vec![7u8; 256 * 1024];
    let (wall, cpu0) = (Instant::now(), cpu());
    let mut sent = 0u64;
    while sent < bytes {
        client.write_all(&chunk).await.unwrap();
        sent += chunk.len() as u64;
    }
    client.shutdown().await.unwrap();
    let received = sink_task.await.unwrap().unwrap();
    assert_eq!(received, sent);
    (wall.elapsed(), cpu() - cpu0)
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let bytes = mib * 1024 * 1024;
    let rt = edgemesh_testkit::tcp::bench_runtime().unwrap();
    let modes = [
        ("direct (no relay)", Mode::Direct),
        ("splice", Mode::Ours(RelayMode::Splice)),
        (
            "copy 8 KiB (ours)",
            Mode::Ours(RelayMode::Copy { buffer: 8 * 1024 }),
        ),
        (
            "copy 256 KiB (ours)",
            Mode::Ours(RelayMode::Copy { buffer: 256 * 1024 }),
        ),
        ("tokio copy_bidirectional 8 KiB", Mode::TokioCopy(8 * 1024)),
        (
            "tokio copy_bidirectional 256 KiB",
            Mode::TokioCopy(256 * 1024),
        ),
    ];
    println!(
        "{mib} MiB per run, best of 3\n{:<34} {:>10} {:>14}",
        "mode", "MiB/s", "CPU s per GiB"
    );
    for (name, mode) in modes {
        let best = (0..3)
            .map(|_| rt.block_on(run(mode, bytes)))
            .min_by_key(|(wall, _)| *wall)
            .unwrap();
        let (wall, cpu) = best;
        let gib = bytes as f64 / (1024.0 * 1024.0 * 1024.0);
        println!(
            "{name:<34} {:>10.0} {:>14.3}",
            mib as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64() / gib
        );
    }
}
