//! Counters of the data path: plain atomics (one relaxed add per event), read through
//! [`Metrics::snapshot`] and exported through its [`Readout`] when `/metrics` is scraped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use edgemesh_telemetry::{Kind, Latency, Readings, Readout};

use crate::service_metrics::ServiceMetrics;

edgemesh_telemetry::counters! {
    /// Live counters; cheap to bump from any task.
    pub struct Metrics => MetricsSnapshot {
        pub accepted,
        pub routed,
        pub no_route,
        pub no_endpoint,
        pub dial_failures,
        pub retries,
        pub active,
        pub bytes_client_to_upstream,
        pub bytes_upstream_to_client,
        pub idle_closed,
        pub udp_sessions_created,
        pub udp_sessions_active,
        pub udp_datagrams_dropped,
        /// The kernel's count of datagrams dropped at the full TPROXY receiver (`SO_RXQ_OVFL`).
        pub udp_receive_buffer_drops,
    }
    also {
        /// Time to connect to the chosen endpoint (successful dials), direct or through the tunnel.
        pub dial_duration: Latency,
        /// Connections, errors and bytes of each service this proxy carried.
        pub services: ServiceMetrics,
    }
}

impl Metrics {
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
        out.table(Kind::Gauge, "edgemesh_proxy_", &gauges)?;
        out.histogram(
            "edgemesh_proxy_dial_duration_seconds",
            "Time to connect to the chosen endpoint, for dials that succeeded.",
            &self.dial_duration,
        )?;
        self.services.read(out)
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
