//! Prometheus metrics of the hub, registered by [`crate::Hub::start`] in the registry it is given
//! (`role.rs` makes the hub's own and serves it on the admin endpoint).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use edgemesh_telemetry::latency::bounds_seconds;
use edgemesh_telemetry::register_metrics;

use crate::health::Health;
use crate::upstream::Upstream;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `upstream`, `cache` or `hub` (an error the hub answered itself).
    pub served_by: String,
    pub verb: String,
    pub code: u16,
}

/// Who answered: bounded to three values, so the histogram has at most three series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServedByLabels {
    pub served_by: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: String,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    /// Until the response head is ready (a watch or a long body goes on after it).
    pub request_duration: Family<ServedByLabels, Histogram>,
    pub online: Gauge,
    pub upstream_healthy: Family<UpstreamLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(|| Histogram::new(bounds_seconds())),
            online: Gauge::default(),
            upstream_healthy: Family::default(),
        }
    }
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        register_metrics(
            registry,
            [
                (
                    "edgemesh_hub_request_duration_seconds",
                    "Time until the response head, by who answered",
                    None,
                    Box::new(metrics.request_duration.clone()),
                ),
                (
                    "edgemesh_hub_requests",
                    "Requests handled by the edge hub, by who answered them",
                    None,
                    Box::new(metrics.requests.clone()),
                ),
                (
                    "edgemesh_hub_cloud_online",
                    "1 while at least one upstream apiserver is healthy, 0 while the hub serves from its cache",
                    None,
                    Box::new(metrics.online.clone()),
                ),
                (
                    "edgemesh_hub_upstream_healthy",
                    "Health of each upstream apiserver (1 healthy, 0 unhealthy)",
                    None,
                    Box::new(metrics.upstream_healthy.clone()),
                ),
            ],
        );
        metrics
    }

    pub fn observe_health(&self, health: &Health, upstreams: &[Upstream]) {
        self.online.set(i64::from(health.is_online()));
        for (state, upstream) in health.states().iter().zip(upstreams) {
            let labels = UpstreamLabels {
                upstream: upstream.url.clone(),
            };
            self.upstream_healthy
                .get_or_create(&labels)
                .set(i64::from(state.healthy));
        }
    }
}
