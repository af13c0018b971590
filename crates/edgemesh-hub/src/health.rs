//! Cloud health: each upstream apiserver is probed periodically; `failure_threshold` failures in a
//! row make it unhealthy, `success_threshold` successes make it healthy again. A proxied request
//! that cannot connect marks its upstream unhealthy at once (fail fast). The hub is online while
//! at least one upstream is healthy.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// Probe settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Path probed on each upstream (`/readyz` by default; any 2xx is healthy).
    pub path: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            failure_threshold: 3,
            success_threshold: 2,
            path: "/readyz".into(),
        }
    }
}

/// The state of one upstream, as the state machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeState {
    pub healthy: bool,
    pub successes: u32,
    pub failures: u32,
}

/// What a probe or a request saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// A proxied request could not connect: unhealthy now.
    ConnectFailed,
}

/// The next state (pure).
pub fn next(state: ProbeState, outcome: Outcome, config: &HealthConfig) -> ProbeState {
    match outcome {
        Outcome::Success => {
            let successes = state.successes.saturating_add(1);
            ProbeState {
                healthy: state.healthy || successes >= config.success_threshold.max(1),
                successes,
                failures: 0,
            }
        }
        Outcome::Failure => {
            let failures = state.failures.saturating_add(1);
            ProbeState {
                healthy: state.healthy && failures < config.failure_threshold.max(1),
                successes: 0,
                failures,
            }
        }
        Outcome::ConnectFailed => ProbeState {
            healthy: false,
            successes: 0,
            failures: state.failures.saturating_add(1),
        },
    }
}

/// Health of every upstream, and a channel that says whether the hub is online.
#[derive(Debug)]
pub struct Health {
    config: HealthConfig,
    states: Mutex<Vec<ProbeState>>,
    online: watch::Sender<bool>,
}

impl Health {
    /// Upstreams start healthy (optimistic): the first probe runs at once, and a request that
    /// cannot connect before it flips the state immediately.
    pub fn new(upstreams: usize, config: HealthConfig) -> Self {
        let initial = ProbeState {
            healthy: true,
            successes: 0,
            failures: 0,
        };
        Self {
            config,
            states: Mutex::new(vec![initial; upstreams]),
            online: watch::Sender::new(upstreams > 0),
        }
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Records an outcome for upstream `index`; returns whether its health changed.
    pub fn record(&self, index: usize, outcome: Outcome) -> bool {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = states.get_mut(index) else {
            return false;
        };
        let before = state.healthy;
        *state = next(*state, outcome, &self.config);
        let changed = before != state.healthy;
        let online = states.iter().any(|s| s.healthy);
        self.online.send_if_modified(|current| {
            let modified = *current != online;
            *current = online;
            modified
        });
        changed
    }

    pub fn is_online(&self) -> bool {
        *self.online.borrow()
    }

    /// Index of the first healthy upstream (failover order = `--server-addr` order).
    pub fn pick(&self) -> Option<usize> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.iter().position(|s| s.healthy)
    }

    pub fn states(&self) -> Vec<ProbeState> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves when the hub is (or becomes) offline: a request waiting on a silent upstream
    /// (a link that drops packets) is given up as soon as the probes notice.
    pub async fn offline(&self) {
        let _ = self.subscribe().wait_for(|online| !*online).await;
    }

    /// Changes of the online state (for offline watches that must end when the cloud returns).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.online.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    fn config() -> HealthConfig {
        HealthConfig {
            failure_threshold: 3,
            success_threshold: 2,
            ..HealthConfig::default()
        }
    }

    fn run(start_healthy: bool, outcomes: &[Outcome]) -> Vec<bool> {
        let mut state = ProbeState {
            healthy: start_healthy,
            ..ProbeState::default()
        };
        outcomes
            .iter()
            .map(|o| {
                state = next(state, *o, &config());
                state.healthy
            })
            .collect()
    }

    #[test]
    fn thresholds() {
        let table: [(bool, &[Outcome], &[bool]); 5] = [
            (true, &[Failure, Failure, Failure], &[true, true, false]),
            (
                true,
                &[Failure, Success, Failure, Failure],
                &[true, true, true, true],
            ),
            (false, &[Success, Success], &[false, true]),
            (false, &[Success, Failure, Success], &[false, false, false]),
            (
                true,
                &[ConnectFailed, Success, Success],
                &[false, false, true],
            ),
        ];
        for (start, outcomes, expected) in table {
            assert_eq!(run(start, outcomes), expected, "{outcomes:?}");
        }
    }

    #[test]
    fn online_follows_any_healthy_upstream_and_failover_picks_the_first() {
        let health = Health::new(2, config());
        assert_eq!(health.pick(), Some(0));
        health.record(0, ConnectFailed);
        assert!(health.is_online());
        assert_eq!(health.pick(), Some(1));
        health.record(1, ConnectFailed);
        assert!(!health.is_online());
        assert_eq!(health.pick(), None);
        health.record(1, Success);
        health.record(1, Success);
        assert!(health.is_online());
    }
}
