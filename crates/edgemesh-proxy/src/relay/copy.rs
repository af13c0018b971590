//! The user-space relay for non-TCP upstreams (tunnel streams) and when configured instead of
//! splice: tokio's `copy_bidirectional_with_sizes` (it half-closes each direction on EOF and
//! overlaps reads with writes), over streams that record activity and count bytes as they go.

use std::io;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::Activity;
use crate::metrics::Metrics;

/// Buffer per direction for upstreams that cannot be spliced (the benchmark's best copy size).
pub const DEFAULT_BUFFER: usize = 256 * 1024;

/// Copies both ways until each direction reached EOF (and was half-closed on the other side).
pub async fn both_ways<U: AsyncRead + AsyncWrite + Unpin>(
    client: &mut TcpStream,
    mut upstream: U,
    prefix: &[u8],
    buffer: usize,
    activity: &Activity,
    metrics: &Metrics,
) -> io::Result<()> {
    upstream.write_all(prefix).await?;
    Metrics::add(&metrics.bytes_client_to_upstream, prefix.len() as u64);
    let mut client = Tracked {
        inner: client,
        activity,
        read_bytes: &metrics.bytes_client_to_upstream,
    };
    let mut upstream = Tracked {
        inner: upstream,
        activity,
        read_bytes: &metrics.bytes_upstream_to_client,
    };
    let size = buffer.max(1);
    tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, size, size).await?;
    Ok(())
}

/// A stream that touches `activity` and counts every byte read from it.
struct Tracked<'a, T> {
    inner: T,
    activity: &'a Activity,
    read_bytes: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.touch();
            Metrics::add(self.read_bytes, n as u64);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
