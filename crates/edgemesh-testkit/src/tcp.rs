//! Loopback TCP peers for benchmarks and tests, and the runtime the benchmarks run them on.

use std::io;
use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A listener on loopback that accepts one connection, reads it to its end and returns how
/// many bytes it received (the far end of a bulk-transfer measurement).
pub async fn counting_sink() -> io::Result<(SocketAddr, JoinHandle<io::Result<u64>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf).await? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    Ok((addr, task))
}

/// The runtime the benchmarks measure on: two worker threads, the same for every benchmark so
/// that their numbers compare.
pub fn bench_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
