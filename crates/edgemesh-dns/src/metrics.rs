//! Counters of the DNS server: plain atomics, read with [`DnsMetrics::snapshot`].
//!
//! Wiring into the Prometheus registry is the telemetry crate's job; this keeps the hot path to
//! one relaxed atomic add per event.

use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters, shared by every listener of one server.
        #[derive(Debug, Default)]
        pub struct DnsMetrics { $($(#[$doc])* $name: AtomicU64,)* }

        /// A point-in-time copy of [`DnsMetrics`].
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct DnsMetricsSnapshot { $($(#[$doc])* pub $name: u64,)* }

        impl DnsMetrics {
            pub fn snapshot(&self) -> DnsMetricsSnapshot {
                DnsMetricsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Requests handed to the handler (parsed far enough to have a header).
    queries,
    /// Answered from the Snapshot (cluster names and their PTRs).
    cluster_answers,
    /// Sent to an upstream server (cache misses).
    forwarded,
    /// Answered from a fresh cache entry.
    cache_hits,
    /// Answered from an expired cache entry because no upstream answered.
    stale_answers,
    /// Upstream exchanges that failed (timeout, refused, garbage).
    upstream_failures,
    /// Upstream answers truncated over UDP and retried over TCP.
    tcp_retries,
    rcode_noerror,
    rcode_nxdomain,
    rcode_servfail,
    rcode_formerr,
    rcode_refused,
    rcode_notimp,
    rcode_other,
}

impl DnsMetrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn query(&self) {
        Self::inc(&self.queries);
    }
    pub(crate) fn cluster_answer(&self) {
        Self::inc(&self.cluster_answers);
    }
    pub(crate) fn forwarded(&self) {
        Self::inc(&self.forwarded);
    }
    pub(crate) fn cache_hit(&self) {
        Self::inc(&self.cache_hits);
    }
    pub(crate) fn stale_answer(&self) {
        Self::inc(&self.stale_answers);
    }
    pub(crate) fn upstream_failure(&self) {
        Self::inc(&self.upstream_failures);
    }
    pub(crate) fn tcp_retry(&self) {
        Self::inc(&self.tcp_retries);
    }

    /// Counts one response by its code.
    pub(crate) fn rcode(&self, code: ResponseCode) {
        Self::inc(match code {
            ResponseCode::NoError => &self.rcode_noerror,
            ResponseCode::NXDomain => &self.rcode_nxdomain,
            ResponseCode::ServFail => &self.rcode_servfail,
            ResponseCode::FormErr => &self.rcode_formerr,
            ResponseCode::Refused => &self.rcode_refused,
            ResponseCode::NotImp => &self.rcode_notimp,
            _ => &self.rcode_other,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_counts_by_rcode() {
        let m = DnsMetrics::default();
        m.query();
        m.rcode(ResponseCode::NXDomain);
        m.rcode(ResponseCode::YXDomain);
        let s = m.snapshot();
        assert_eq!((s.queries, s.rcode_nxdomain, s.rcode_other), (1, 1, 1));
        assert_eq!(s.rcode_noerror, 0);
    }
}
