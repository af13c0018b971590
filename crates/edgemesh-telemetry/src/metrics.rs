//! One metrics path: every crate registers what it counts into one prometheus-client
//! [`Registry`], and the admin endpoint only encodes that registry (OpenMetrics text).
//!
//! Hot paths keep counting in their own plain atomics (one relaxed add per event); a crate
//! exposes them by implementing [`Readout`] and registering it with [`register_readout`], so the
//! values are read only when `/metrics` is scraped.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::latency::Latency;
use crate::reply::Reply;

/// Declares a struct of live `AtomicU64` counters (one relaxed add per event), the plain-`u64`
/// copy of it that `/metrics` and tests read, and the `snapshot()` that takes the copy, from one
/// list of fields; an optional `also { name: Type, ... }` list adds other fields (each `Default`)
/// to the live struct only, such as [`Latency`] histograms, which have their own snapshot:
///
/// ```
/// edgemesh_telemetry::counters! {
///     /// Live counters; cheap to bump from any task.
///     pub struct Metrics => MetricsSnapshot {
///         /// Connections accepted.
///         pub accepted,
///         dropped,
///     }
///     also {
///         /// Time to accept.
///         pub accept_duration: edgemesh_telemetry::Latency,
///     }
/// }
/// let metrics = Metrics::default();
/// metrics.accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
/// assert_eq!(metrics.snapshot().accepted, 1);
/// ```
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $live:ident => $snapshot:ident {
            $($(#[$doc:meta])* $field_vis:vis $name:ident),* $(,)?
        }
        $(also {
            $($(#[$also_doc:meta])* $also_vis:vis $also:ident: $also_type:ty),* $(,)?
        })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $live {
            $($(#[$doc])* $field_vis $name: ::std::sync::atomic::AtomicU64,)*
            $($($(#[$also_doc])* $also_vis $also: $also_type,)*)?
        }

        #[doc = concat!("A point-in-time copy of [`", stringify!($live), "`].")]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $snapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl $live {
            pub fn snapshot(&self) -> $snapshot {
                $snapshot {
                    $($name: self.$name.load(::std::sync::atomic::Ordering::Relaxed),)*
                }
            }
        }
    };
}

/// The content type of [`encode`]'s text (the OpenMetrics 1.0 exposition format).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metrics kept in their owner's atomics, read at scrape time.
pub trait Readout: Send + Sync + 'static {
    /// Writes every metric of this owner into `out`.
    fn read(&self, out: &mut Readings<'_>) -> fmt::Result;

    /// Registers these metrics: every later scrape of `registry` reads them.
    fn register(self: &Arc<Self>, registry: &mut Registry)
    where
        Self: Sized,
    {
        register_readout(registry, Arc::clone(self));
    }
}

/// The two kinds of metric a [`Readout`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows; registered without `_total` (the encoder appends it).
    Counter,
    Gauge,
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        }
    }

    fn encode<V: Value>(self, value: V, encoder: MetricEncoder<'_>) -> fmt::Result {
        match self {
            Kind::Counter => ConstCounter::new(value).encode(encoder),
            Kind::Gauge => ConstGauge::new(value).encode(encoder),
        }
    }
}

/// A value either kind can carry: whole counts (`u64`) or fractions such as seconds (`f64`).
pub trait Value: EncodeCounterValue + EncodeGaugeValue {}

impl<V: EncodeCounterValue + EncodeGaugeValue> Value for V {}

/// Where a [`Readout`] writes its values.
pub struct Readings<'a>(DescriptorEncoder<'a>);

impl fmt::Debug for Readings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Readings")
    }
}

impl Readings<'_> {
    /// One unlabelled metric.
    pub fn one<V: Value>(&mut self, kind: Kind, name: &str, help: &str, value: V) -> fmt::Result {
        let encoder = self
            .0
            .encode_descriptor(name, help, None, kind.metric_type())?;
        kind.encode(value, encoder)
    }

    /// One family whose series each carry their own labels, such as `{namespace, service}`;
    /// the caller bounds how many there are.
    pub fn labelled(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        series: &[(Vec<(&str, &str)>, u64)],
    ) -> fmt::Result {
        let mut family = self
            .0
            .encode_descriptor(name, help, None, kind.metric_type())?;
        for (labels, value) in series {
            kind.encode(*value, family.encode_family(labels)?)?;
        }
        Ok(())
    }

    /// A histogram of durations; `name` ends in `_seconds`.
    pub fn histogram(&mut self, name: &str, help: &str, latency: &Latency) -> fmt::Result {
        let snap = latency.snapshot();
        let mut encoder = self
            .0
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        let no_exemplars: Option<&HashMap<usize, Exemplar<NoLabelSet, f64>>> = None;
        encoder.encode_histogram(snap.sum_seconds, snap.count, &snap.buckets, no_exemplars)
    }

    /// Unlabelled metrics of one kind: `(name after prefix, help, value)` rows.
    pub fn table(&mut self, kind: Kind, prefix: &str, rows: &[(&str, &str, u64)]) -> fmt::Result {
        for (name, help, value) in rows {
            self.one(kind, &format!("{prefix}{name}"), help, *value)?;
        }
        Ok(())
    }

    /// One series per value of `label`; the values are a fixed set, so cardinality is bounded.
    pub fn by_label(
        &mut self,
        kind: Kind,
        name: &str,
        help: &str,
        (label, values): (&str, &[(&str, u64)]),
    ) -> fmt::Result {
        let series: Vec<_> = values
            .iter()
            .map(|(label_value, value)| (vec![(label, *label_value)], *value))
            .collect();
        self.labelled(kind, name, help, &series)
    }
}

/// Adapts a [`Readout`] to prometheus-client's collector.
struct Collected<T>(Arc<T>);

impl<T> fmt::Debug for Collected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Collected")
    }
}

impl<T: Readout> Collector for Collected<T> {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        self.0.read(&mut Readings(encoder))
    }
}

/// Registers `source`: its metrics appear in every later scrape of `registry`.
pub fn register_readout<T: Readout>(registry: &mut Registry, source: Arc<T>) {
    registry.register_collector(Box::new(Collected(source)));
}

/// A row of [`register_metrics`]: a name, a help text, a unit (`Some` as
/// [`Registry::register_with_unit`] takes it: the name gains its suffix and the text a `# UNIT`
/// line) and the metric, boxed so that one table holds counters, gauges and histograms alike.
pub type MetricRow<'a> = (&'a str, &'a str, Option<Unit>, Box<dyn Metric>);

/// Registers prometheus-client metrics from one table of [`MetricRow`]s, in its order.
pub fn register_metrics<const N: usize>(registry: &mut Registry, rows: [MetricRow<'_>; N]) {
    for (name, help, unit, metric) in rows {
        let metric = Boxed(metric);
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, metric),
            None => registry.register(name, help, metric),
        }
    }
}

/// A boxed metric as [`Registry::register`] takes one (prometheus-client implements [`Metric`]
/// for sized types only); it encodes as the metric it holds.
#[derive(Debug)]
struct Boxed(Box<dyn Metric>);

impl EncodeMetric for Boxed {
    fn encode(&self, encoder: MetricEncoder<'_>) -> fmt::Result {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `/metrics` answer: `registry` in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> Reply {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => Reply {
            status: 200,
            content_type: OPENMETRICS_CONTENT_TYPE,
            body: text.into_bytes(),
        },
        Err(e) => Reply::text(500, format!("cannot encode metrics: {e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Counts(AtomicU64, Latency);

    impl Readout for Counts {
        fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
            let hits = self.0.load(Ordering::Relaxed);
            out.one(Kind::Counter, "test_hits", "Hits.", hits)?;
            out.table(Kind::Gauge, "test_", &[("level", "Level.", 7)])?;
            let rcodes: &[(&str, u64)] = &[("NOERROR", hits)];
            out.by_label(Kind::Counter, "test_answers", "Answers.", ("rcode", rcodes))?;
            let paths: &[(&str, u64)] = &[("direct", 2), ("relayed", 0)];
            out.by_label(Kind::Gauge, "test_peers", "Peers.", ("path", paths))?;
            out.one(Kind::Gauge, "test_last_seconds", "Last.", 0.25)?;
            let info = [(vec![("role", "agent"), ("version", "1")], 1)];
            out.labelled(Kind::Gauge, "test_info", "Info.", &info)?;
            out.histogram("test_wait_seconds", "Waits.", &self.1)
        }
    }

    #[test]
    fn a_table_registers_in_order_with_units_and_empty_families_left_out() {
        use prometheus_client::metrics::counter::Counter;
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::Gauge;
        let served: Counter = Counter::default();
        let wait: Gauge = Gauge::default();
        let unseen: Family<Vec<(String, String)>, Counter> = Family::default();
        let mut registry = Registry::default();
        register_metrics(
            &mut registry,
            [
                ("test_served", "Served.", None, Box::new(served.clone())),
                (
                    "test_wait",
                    "Wait.",
                    Some(Unit::Seconds),
                    Box::new(wait.clone()),
                ),
                ("test_unseen", "Unseen.", None, Box::new(unseen.clone())),
            ],
        );
        served.inc_by(2);
        wait.set(1);
        let text = String::from_utf8(encode(&registry).body).unwrap();
        let expected = [
            "# TYPE test_served counter",
            "test_served_total 2",
            "# TYPE test_wait_seconds gauge",
            "# UNIT test_wait_seconds seconds",
            "test_wait_seconds 1",
            "# EOF",
        ];
        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with("# HELP"))
                .collect::<Vec<_>>(),
            expected
        );
        unseen.get_or_create(&vec![("k".into(), "v".into())]).inc();
        let text = String::from_utf8(encode(&registry).body).unwrap();
        assert!(text.contains("\ntest_unseen_total{k=\"v\"} 1\n"), "{text}");
    }

    #[test]
    fn readouts_are_read_at_each_scrape_in_openmetrics_text() {
        let counts = Arc::new(Counts::default());
        let mut registry = Registry::default();
        register_readout(&mut registry, Arc::clone(&counts));
        counts.0.fetch_add(3, Ordering::Relaxed);
        counts.1.observe(std::time::Duration::from_millis(3));
        let reply = encode(&registry);
        assert_eq!(reply.content_type, OPENMETRICS_CONTENT_TYPE);
        let text = String::from_utf8(reply.body).unwrap();
        for line in [
            "# TYPE test_hits counter",
            "test_hits_total 3",
            "# TYPE test_level gauge",
            "test_level 7",
            "test_answers_total{rcode=\"NOERROR\"} 3",
            "# TYPE test_peers gauge",
            "test_peers{path=\"relayed\"} 0",
            "test_last_seconds 0.25",
            "test_info{role=\"agent\",version=\"1\"} 1",
            "# TYPE test_wait_seconds histogram",
            "test_wait_seconds_count 1",
            "test_wait_seconds_bucket{le=\"0.0025\"} 0",
            "test_wait_seconds_bucket{le=\"0.005\"} 1",
            "test_wait_seconds_bucket{le=\"+Inf\"} 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
