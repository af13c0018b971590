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
        /// UDP sessions ended to make room for a new flow (the session table was full).
        pub udp_sessions_evicted,
        /// UDP datagrams dropped, by reason ([`UdpDrop`]).
        pub udp_dropped_queue_full,
        pub udp_dropped_no_session,
        pub udp_dropped_send_failed,
        pub udp_dropped_reply_failed,
        /// The kernel's count of datagrams dropped at the full TPROXY receiver (`SO_RXQ_OVFL`).
        pub udp_receive_buffer_drops,
        /// TCP connections and UDP flows refused because a socket they needed lay in the
        /// descriptor reserve (`edgemesh_host::fd_in_reserve`).
        pub fd_reserve_refused,
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

    /// Counts one UDP datagram dropped for `reason`.
    pub(crate) fn udp_dropped(&self, reason: UdpDrop) {
        let counter = match reason {
            UdpDrop::QueueFull => &self.udp_dropped_queue_full,
            UdpDrop::NoSession => &self.udp_dropped_no_session,
            UdpDrop::SendFailed => &self.udp_dropped_send_failed,
            UdpDrop::ReplyFailed => &self.udp_dropped_reply_failed,
        };
        Metrics::inc(counter);
    }
}

impl MetricsSnapshot {
    /// UDP datagrams dropped for any reason.
    pub fn udp_datagrams_dropped(&self) -> u64 {
        self.udp_dropped_queue_full
            + self.udp_dropped_no_session
            + self.udp_dropped_send_failed
            + self.udp_dropped_reply_failed
    }
}

/// Why the UDP path dropped a datagram: the `reason` label of
/// `edgemesh_proxy_udp_datagrams_dropped_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpDrop {
    /// The flow's queue in front of its tunnel channel (still opening, or slower than the
    /// client) was full, or the channel's own queue was.
    QueueFull,
    /// A new flow's first datagram found no session and none could be opened: no such service,
    /// no endpoint, or a socket error.
    NoSession,
    /// Sending towards the backend failed (a socket error such as a refused port, or the flow's
    /// channel had closed).
    SendFailed,
    /// Sending a reply to the client failed.
    ReplyFailed,
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
                "udp_sessions_evicted",
                "UDP sessions ended to admit a new flow because the session table was full.",
                m.udp_sessions_evicted,
            ),
            (
                "udp_receive_buffer_drops",
                "UDP datagrams the kernel dropped because the transparent receiver's buffer was full.",
                m.udp_receive_buffer_drops,
            ),
            (
                "fd_reserve_refusals",
                "TCP connections and UDP flows refused because the process reached the data path's share of file descriptors (the rest is kept for the admin endpoint, the manifests watcher, DNS and the tunnel).",
                m.fd_reserve_refused,
            ),
        ];
        out.table(Kind::Counter, "edgemesh_proxy_", &counters)?;
        let drops = [
            ("queue_full", m.udp_dropped_queue_full),
            ("no_session", m.udp_dropped_no_session),
            ("send_failed", m.udp_dropped_send_failed),
            ("reply_failed", m.udp_dropped_reply_failed),
        ];
        out.by_label(
            Kind::Counter,
            "edgemesh_proxy_udp_datagrams_dropped",
            "UDP datagrams dropped, by reason.",
            ("reason", &drops),
        )?;
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
