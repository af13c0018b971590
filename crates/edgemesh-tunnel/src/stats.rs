//! Per-peer counters and the `/debug/peers` report.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::slots::SlotPressure;

/// Traffic through the tunnel with one peer (both directions of every stream).
#[derive(Debug, Default)]
pub struct PeerCounters {
    pub streams_open: AtomicU64,
    pub streams_total: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
}

/// How this node reaches a peer right now, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// A plain connection (same LAN, or a reachable public address).
    Direct,
    /// A direct connection obtained by DCUtR hole punching.
    Punched,
    /// Only through a relay's circuit.
    Relayed,
}

/// What a connection runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// TCP + noise + yamux (also every relayed circuit).
    Tcp,
    /// QUIC v1 (TLS 1.3), between members proven over TCP.
    Quic,
}

/// Which connection to a peer new streams should use, lowest first: QUIC (direct or punched),
/// then TCP (direct or punched), then a relay's circuit. The driver closes the worse ones once
/// a better one is up; `/debug/peers` reports the best.
pub(crate) fn preference(path: PathKind, transport: TransportKind) -> u8 {
    match (path, transport) {
        (PathKind::Relayed, _) => 2,
        (_, TransportKind::Tcp) => 1,
        (_, TransportKind::Quic) => 0,
    }
}

/// One peer as `/debug/peers` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerReport {
    pub peer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub path: PathKind,
    /// The transport of the connection on `path`.
    pub transport: TransportKind,
    /// Remote addresses of the open connections.
    pub addresses: Vec<String>,
    pub is_relay: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    pub streams_open: u64,
    pub streams_total: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// Decrements `streams_open` when the stream it belongs to is dropped.
#[derive(Debug)]
struct OpenGuard(Arc<PeerCounters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream being opened (CONNECT sent, no answer yet) counts as open while this lives, so
/// that a better path coming up meanwhile does not close the connection under it: the CONNECT
/// would then wait out the whole answer timeout before being retried.
#[derive(Debug)]
pub(crate) struct Opening {
    _guard: OpenGuard,
}

impl Opening {
    pub(crate) fn new(counters: Arc<PeerCounters>) -> Self {
        counters.streams_open.fetch_add(1, Ordering::Relaxed);
        Opening {
            _guard: OpenGuard(counters),
        }
    }
}

/// A stream whose bytes are added to its peer's counters.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    guard: OpenGuard,
    /// The slot among the streams this node may have open to the peer (`client.rs`), freed
    /// when the stream is dropped, and the opens waiting for one of those slots.
    slot: Option<(tokio::sync::OwnedSemaphorePermit, Arc<SlotPressure>)>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, counters: Arc<PeerCounters>) -> Self {
        counters.streams_open.fetch_add(1, Ordering::Relaxed);
        counters.streams_total.fetch_add(1, Ordering::Relaxed);
        Counted {
            inner,
            guard: OpenGuard(counters),
            slot: None,
        }
    }

    /// The stream holds `slot`, one of those `pressure` counts the waiters for, until it is
    /// dropped.
    pub(crate) fn holding(
        mut self,
        slot: tokio::sync::OwnedSemaphorePermit,
        pressure: Arc<SlotPressure>,
    ) -> Self {
        self.slot = Some((slot, pressure));
        self
    }

    /// The opens waiting for a slot like the one this stream holds.
    pub(crate) fn slot_pressure(&self) -> Option<Arc<SlotPressure>> {
        self.slot.as_ref().map(|(_, pressure)| Arc::clone(pressure))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.guard.0.bytes_received.fetch_add(n, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.guard
                .0
                .bytes_sent
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads a counter.
pub(crate) fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
