//! The user-space relay: a buffer per direction. Used for non-TCP upstreams (tunnel streams)
//! and when configured instead of splice.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Activity;
use crate::metrics::Metrics;

/// Buffer per direction for upstreams that cannot be spliced (the benchmark's best copy size).
pub const DEFAULT_BUFFER: usize = 256 * 1024;

/// Copies both ways until each direction reached EOF (and was half-closed on the other side).
pub async fn both_ways<U: AsyncRead + AsyncWrite + Unpin>(
    client: &mut TcpStream,
    upstream: U,
    prefix: &[u8],
    buffer: usize,
    activity: &Activity,
    metrics: &Metrics,
) -> io::Result<()> {
    let (mut up_read, mut up_write) = tokio::io::split(upstream);
    up_write.write_all(prefix).await?;
    Metrics::add(&metrics.bytes_client_to_upstream, prefix.len() as u64);
    let (mut client_read, mut client_write) = client.split();
    let upload = one_way(
        &mut client_read,
        &mut up_write,
        buffer,
        activity,
        &metrics.bytes_client_to_upstream,
    );
    let download = one_way(
        &mut up_read,
        &mut client_write,
        buffer,
        activity,
        &metrics.bytes_upstream_to_client,
    );
    tokio::try_join!(upload, download).map(|_| ())
}

async fn one_way<R, W>(
    from: &mut R,
    to: &mut W,
    buffer: usize,
    activity: &Activity,
    counter: &std::sync::atomic::AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buffer.max(1)];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the peer on the other side sees EOF; the other direction goes on.
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        activity.touch();
        Metrics::add(counter, n as u64);
    }
}
