//! Prometheus metrics of the gateway, per route.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use edgemesh_telemetry::register_metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's name (`namespace/virtualservice#index` or its `name`); `none` when no route
    /// matched.
    pub route: String,
    pub code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub upstream_errors: Family<RouteLabels, Counter>,
    pub connections: Family<RouteLabels, Counter>,
    pub retries: Family<RouteLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                // 100 µs … ~13 s, doubling.
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.0001, 2.0, 18,
                ))
            }),
            upstream_errors: Family::default(),
            connections: Family::default(),
            retries: Family::default(),
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
                    "edgemesh_gateway_requests",
                    "HTTP requests answered by the gateway, by route and status code",
                    None,
                    Box::new(metrics.requests.clone()),
                ),
                (
                    "edgemesh_gateway_request_duration",
                    "Time from a request's arrival to its response head, by route",
                    Some(Unit::Seconds),
                    Box::new(metrics.latency.clone()),
                ),
                (
                    "edgemesh_gateway_upstream_errors",
                    "Requests or connections whose backend could not be reached or broke, by route",
                    None,
                    Box::new(metrics.upstream_errors.clone()),
                ),
                (
                    "edgemesh_gateway_tcp_connections",
                    "TCP and TLS-passthrough connections routed, by route",
                    None,
                    Box::new(metrics.connections.clone()),
                ),
                (
                    "edgemesh_gateway_retries",
                    "Tries of HTTP requests after their first (the route's retries), by route",
                    None,
                    Box::new(metrics.retries.clone()),
                ),
            ],
        );
        metrics
    }

    pub fn request(&self, route: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                code,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub fn retry(&self, route: &str) {
        self.retries
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .inc();
    }

    pub fn upstream_error(&self, route: &str) {
        self.upstream_errors
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .inc();
    }
}
