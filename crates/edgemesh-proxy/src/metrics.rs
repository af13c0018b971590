//! Counters of the data path: plain atomics (one relaxed add per event), read through
//! [`Metrics::snapshot`] and exported through its [`Readout`] when `/metrics` is scraped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use edgemesh_telemetry::{Kind, Readings, Readout};

/// Live counters; cheap to bump from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    pub accepted: AtomicU64,
    pub routed: AtomicU64,
    pub no_route: AtomicU64,
    pub no_endpoint: AtomicU64,
    pub dial_failures: AtomicU64,
    pub retries: AtomicU64,
    pub active: AtomicU64,
    pub bytes_client_to_upstream: AtomicU64,
    pub bytes_upstream_to_client: AtomicU64,
    pub idle_closed: AtomicU64,
    pub udp_sessions_created: AtomicU64,
    pub udp_sessions_active: AtomicU64,
    pub udp_datagrams_dropped: AtomicU64,
    /// The kernel's count of datagrams dropped at the full TPROXY receiver (`SO_RXQ_OVFL`).
    pub udp_receive_buffer_drops: AtomicU64,
}

/// A point-in-time copy of [`Metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub accepted: u64,
    pub routed: u64,
    pub no_route: u64,
    pub no_endpoint: u64,
    pub dial_failures: u64,
    pub retries: u64,
    pub active: u64,
    pub bytes_client_to_upstream: u64,
    pub bytes_upstream_to_client: u64,
    pub idle_closed: u64,
    pub udp_sessions_created: u64,
    pub udp_sessions_active: u64,
    pub udp_datagrams_dropped: u64,
    pub udp_receive_buffer_drops: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            accepted: self.accepted.load(Relaxed),
            routed: self.routed.load(Relaxed),
            no_route: self.no_route.load(Relaxed),
            no_endpoint: self.no_endpoint.load(Relaxed),
            dial_failures: self.dial_failures.load(Relaxed),
            retries: self.retries.load(Relaxed),
            active: self.active.load(Relaxed),
            bytes_client_to_upstream: self.bytes_client_to_upstream.load(Relaxed),
            bytes_upstream_to_client: self.bytes_upstream_to_client.load(Relaxed),
            idle_closed: self.idle_closed.load(Relaxed),
            udp_sessions_created: self.udp_sessions_created.load(Relaxed),
            udp_sessions_active: self.udp_sessions_active.load(Relaxed),
            udp_datagrams_dropped: self.udp_datagrams_dropped.load(Relaxed),
            udp_receive_buffer_drops: self.udp_receive_buffer_drops.load(Relaxed),
        }
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

impl Readout for Metrics {
    fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
        let m = self.snapshot();
        let counters = [
            ("tcp_accepted", "TCP connections accepted.", m.accepted),
            (
                "tcp_routed",
                "TCP connections to a known frontend.",
                m.routed,
            ),
            (
                "tcp_no_route",
                "TCP connections to an unknown frontend.",
                m.no_route,
            ),
            (
                "tcp_no_endpoint",
                "TCP connections reset, and UDP flows refused: no endpoint.",
                m.no_endpoint,
            ),
            (
                "dial_failures",
                "Upstream connects that failed.",
                m.dial_failures,
            ),
            (
                "dial_retries",
                "Connections retried on another endpoint.",
                m.retries,
            ),
            (
                "bytes_to_upstream",
                "Bytes from clients to backends.",
                m.bytes_client_to_upstream,
            ),
            (
                "bytes_to_client",
                "Bytes from backends to clients.",
                m.bytes_upstream_to_client,
            ),
            (
                "idle_closed",
                "Connections closed after the idle timeout.",
                m.idle_closed,
            ),
            (
                "udp_sessions",
                "UDP sessions created.",
                m.udp_sessions_created,
            ),
            (
                "udp_datagrams_dropped",
                "UDP datagrams dropped (queue full, no session, or a send failed).",
                m.udp_datagrams_dropped,
            ),
            (
                "udp_receive_buffer_drops",
                "UDP datagrams the kernel dropped because the transparent receiver's buffer was full.",
                m.udp_receive_buffer_drops,
            ),
        ];
        out.table(Kind::Counter, "edgemesh_proxy_", &counters)?;
        let gauges = [
            (
                "active_connections",
                "TCP connections being relayed.",
                m.active,
            ),
            (
                "udp_sessions_active",
                "UDP sessions alive.",
                m.udp_sessions_active,
            ),
        ];
        out.table(Kind::Gauge, "edgemesh_proxy_", &gauges)
    }
}

/// Counts one value in `active` while alive (decrements on drop, also on panic or cancel).
#[derive(Debug)]
pub(crate) struct ActiveGuard<'a>(&'a AtomicU64);

impl<'a> ActiveGuard<'a> {
    pub(crate) fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Relaxed);
        Self(counter)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
