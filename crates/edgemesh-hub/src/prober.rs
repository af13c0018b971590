//! When the hub asks whether the cloud is there: on a rhythm (the health verdict and its
//! metrics) and at once when a request, a connect or a watch suggests it is gone.

use std::sync::Arc;
use std::time::Duration;

use crate::health::Outcome;
use crate::state::State;
use crate::upstream::probe;

/// How long a probe asked for outside the prober's rhythm may take (a request got no answer, a
/// connect failed, a watch broke): the question is "is it still there?", not a health verdict.
pub const QUICK_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes upstream `index` now, with [`QUICK_PROBE_TIMEOUT`].
pub async fn probe_now(state: &State, index: usize) -> Outcome {
    let path = &state.health.config().path;
    probe(
        &state.clients.pooled,
        &state.upstreams[index],
        path,
        QUICK_PROBE_TIMEOUT,
    )
    .await
}

/// Probes every upstream forever, every `interval` (first probe at once), and updates the
/// health metrics.
pub async fn run_prober_with_metrics(state: Arc<State>) {
    let (client, upstreams, health) = (&state.clients.pooled, &state.upstreams, &state.health);
    let config = health.config().clone();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (index, upstream) in upstreams.iter().enumerate() {
            let outcome = probe(client, upstream, &config.path, config.timeout).await;
            record(&state, index, outcome);
        }
    }
}

/// Records `outcome` for upstream `index`, wherever it was seen (a probe, a request that got no
/// answer, a watch that broke): a change of health is logged and the gauges follow at once, so
/// the hub never goes offline (or back) without saying so.
pub fn record(state: &State, index: usize, outcome: Outcome) {
    let (health, upstreams) = (&state.health, &state.upstreams);
    if health.record(index, outcome) {
        let healthy = health.states().get(index).is_some_and(|s| s.healthy);
        let to = if healthy { "healthy" } else { "unhealthy" };
        let upstream = upstreams.get(index).map_or("?", |u| u.url.as_str());
        tracing::warn!(upstream, state = to, ?outcome, "upstream health changed");
    }
    state.metrics.observe_health(health, upstreams);
}
