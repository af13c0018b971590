//! A latency histogram for hot paths: fixed buckets in seconds, one relaxed add per bucket and
//! one for the sum per observation, no lock (prometheus-client's `Histogram` takes a mutex on
//! every `observe`, which the proxy and DNS paths should not pay per connection or query).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the buckets, in nanoseconds (an observation compares integers): 100 µs to
/// 10 s, roughly ×2.5 apart, which covers a loopback dial (tens of µs, in the first bucket), a
/// cross-LAN tunnel dial (tens of ms) and an nft apply of 100,000 services (seconds). `+Inf` is
/// implied.
const BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The same bounds in seconds, the unit the exposition uses (also for histograms kept with
/// prometheus-client, so every edgemesh histogram has the same buckets).
pub fn bounds_seconds() -> impl Iterator<Item = f64> {
    // Exact: the division is correctly rounded, so 100_000 / 1e9 is the double nearest 0.0001.
    BOUNDS_NANOS.iter().map(|&nanos| nanos as f64 / 1e9)
}

/// Durations counted into [`bounds_seconds`] (plus `+Inf`), with their sum.
#[derive(Debug, Default)]
pub struct Latency {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A point-in-time copy of a [`Latency`], in the form the OpenMetrics encoder takes.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySnapshot {
    pub sum_seconds: f64,
    pub count: u64,
    /// `(upper bound in seconds, observations in that bucket alone)`, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl Latency {
    /// Counts one duration.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let index = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[index].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let bounds = bounds_seconds().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(bound, count)| (bound, count.load(Relaxed)))
            .collect();
        LatencySnapshot {
            // Nanoseconds to seconds: the sum stays exact below 2^53 ns (104 days of latency).
            sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9,
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_in_seconds_print_as_written() {
        let printed: Vec<String> = bounds_seconds().map(|b| b.to_string()).collect();
        assert_eq!(
            printed,
            [
                "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
                "0.1", "0.25", "0.5", "1", "2.5", "5", "10"
            ]
        );
    }

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let latency = Latency::default();
        latency.observe(Duration::from_micros(100)); // on the bound: le="0.0001"
        latency.observe(Duration::from_micros(101)); // just above: le="0.00025"
        latency.observe(Duration::from_millis(3));
        latency.observe(Duration::from_secs(60)); // +Inf
        let snap = latency.snapshot();
        assert_eq!(snap.count, 4);
        assert_eq!(snap.buckets.len(), 17);
        assert_eq!(snap.buckets[0], (0.0001, 1));
        assert_eq!(snap.buckets[1], (0.00025, 1));
        assert_eq!(snap.buckets[5], (0.005, 1));
        assert_eq!(snap.buckets[16], (f64::INFINITY, 1));
        assert!(
            (snap.sum_seconds - 60.003201).abs() < 1e-9,
            "{}",
            snap.sum_seconds
        );
    }
}
