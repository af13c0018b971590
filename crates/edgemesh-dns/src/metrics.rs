//! Counters of the DNS server: plain atomics (one relaxed add per event on the hot path), read
//! with [`DnsMetrics::snapshot`] and exported through its [`Readout`] when `/metrics` is scraped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use edgemesh_telemetry::{Kind, Readings, Readout};
use hickory_proto::op::ResponseCode;

edgemesh_telemetry::counters! {
    /// Live counters, shared by every listener of one server.
    pub struct DnsMetrics => DnsMetricsSnapshot {
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
    also {
        /// From a parsed query to its response sent (cluster answers, cache and upstream alike).
        pub(crate) request_duration: edgemesh_telemetry::Latency,
    }
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

impl Readout for DnsMetrics {
    fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
        let m = self.snapshot();
        let counters = [
            ("queries", "DNS queries received.", m.queries),
            (
                "cluster_answers",
                "Queries answered from the Snapshot.",
                m.cluster_answers,
            ),
            ("forwarded", "Queries forwarded upstream.", m.forwarded),
            (
                "cache_hits",
                "Queries answered from a fresh cache entry.",
                m.cache_hits,
            ),
            (
                "stale_answers",
                "Queries answered from an expired entry because no upstream answered.",
                m.stale_answers,
            ),
            (
                "upstream_failures",
                "Upstream exchanges that failed.",
                m.upstream_failures,
            ),
            (
                "upstream_tcp_retries",
                "Upstream answers truncated over UDP and asked again over TCP.",
                m.tcp_retries,
            ),
        ];
        out.table(Kind::Counter, "edgemesh_dns_", &counters)?;
        // Seven fixed values: the label's cardinality is bounded.
        let rcodes = [
            ("NOERROR", m.rcode_noerror),
            ("NXDOMAIN", m.rcode_nxdomain),
            ("SERVFAIL", m.rcode_servfail),
            ("FORMERR", m.rcode_formerr),
            ("REFUSED", m.rcode_refused),
            ("NOTIMP", m.rcode_notimp),
            ("OTHER", m.rcode_other),
        ];
        out.by_label(
            Kind::Counter,
            "edgemesh_dns_responses",
            "Responses sent, by response code (OTHER: any code not listed).",
            ("rcode", &rcodes),
        )?;
        out.histogram(
            "edgemesh_dns_request_duration_seconds",
            "Time from a query received to its response sent.",
            &self.request_duration,
        )
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
