//! Start-up and wiring: open the cache, bind the listeners, then run the prober, the ConfigMap
//! poller, the certificate reloader and the accept loops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use edgemesh_host::SocketFactory;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::agents::{AgentList, CacheAgents};
use crate::bootstrap::CsrSettings;
use crate::config::HubConfig;
use crate::creds::OwnToken;
use crate::error::HubError;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::state::State;
use crate::store::{Cache, CacheStats};
use crate::tls::ReloadingCert;
use crate::{bootstrap, configmap, prober, server, upstream};

/// Builder entry point.
#[derive(Debug)]
pub struct Hub;

/// A started hub: cache loaded, listeners bound. [`RunningHub::serve`] runs it.
#[derive(Debug)]
pub struct RunningHub {
    state: Arc<State>,
    config: HubConfig,
    secure: Option<(TcpListener, Arc<ReloadingCert>)>,
    plain: Option<TcpListener>,
    pub secure_addr: Option<SocketAddr>,
    pub insecure_addr: Option<SocketAddr>,
}

/// What `/debug/hub` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HubStatus {
    pub online: bool,
    pub upstreams: Vec<UpstreamStatus>,
    pub cache_agents_flags: String,
    pub cache_agents_config_map: String,
    pub cache: CacheStats,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UpstreamStatus {
    pub url: String,
    pub healthy: bool,
    pub consecutive_failures: u32,
}

impl Hub {
    /// Validates `config`, loads the cache from disk and binds the listeners.
    pub async fn start(config: HubConfig, registry: &mut Registry) -> Result<RunningHub, HubError> {
        let upstreams = Arc::new(config.validate()?);
        let loading = Instant::now();
        let cache_dir = config.cache_dir.clone();
        let cache = tokio::task::spawn_blocking(move || Cache::open(&cache_dir))
            .await
            .map_err(|e| HubError::Config(format!("cache loader panicked: {e}")))??;
        let stats = cache.stats();
        tracing::info!(
            objects = stats.objects,
            resources = stats.resources,
            dir = %config.cache_dir.display(),
            elapsed = ?loading.elapsed(),
            "cache loaded"
        );
        let agents = CacheAgents::new(
            AgentList::parse(&config.cache_agents),
            configmap::load_persisted(&config.cache_dir),
        );
        let health = Arc::new(Health::new(upstreams.len(), config.health.clone()));
        let metrics = Metrics::register(registry);
        metrics.observe_health(&health, &upstreams);
        let state = Arc::new(State {
            cache: Arc::new(cache),
            agents: Arc::new(agents),
            health,
            upstreams,
            clients: upstream::clients(config.ca_file.as_deref(), config.connect_timeout)?,
            metrics,
            bookmark_interval: config.bookmark_interval,
            body_stall_timeout: config.body_stall_timeout,
            answer_limits: config.answer_limits,
            own_token: OwnToken::new(config.token_file.as_deref()),
        });
        let secure = match (config.secure_addr, &config.cert_file, &config.key_file) {
            (Some(addr), Some(cert), Some(key)) => {
                let serving = ReloadingCert::load(cert, key)?;
                edgemesh_telemetry::register_readout(registry, Arc::clone(&serving));
                Some((bind(&*config.sockets, addr)?, serving))
            }
            _ => None,
        };
        let plain = match config.insecure_addr {
            Some(addr) => Some(bind(&*config.sockets, addr)?),
            None => None,
        };
        let secure_addr = secure.as_ref().and_then(|(l, _)| l.local_addr().ok());
        let insecure_addr = plain.as_ref().and_then(|l| l.local_addr().ok());
        Ok(RunningHub {
            state,
            config,
            secure,
            plain,
            secure_addr,
            insecure_addr,
        })
    }
}

fn bind(sockets: &dyn SocketFactory, addr: SocketAddr) -> Result<TcpListener, HubError> {
    sockets
        .tcp_bind(addr)
        .map_err(|error| HubError::Bind { addr, error })
}

impl RunningHub {
    /// A cheap handle for status reports while [`RunningHub::serve`] runs.
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle(Arc::clone(&self.state))
    }

    /// Serves until the process ends.
    pub async fn serve(self) -> Result<(), HubError> {
        let state = self.state;
        let prober = prober::run_prober_with_metrics(Arc::clone(&state));
        let mut tasks = vec![tokio::spawn(prober)];
        if let Some((namespace, name)) = self.config.config_map.clone() {
            let poll = configmap::run(
                Arc::clone(&state),
                namespace,
                name,
                self.config.config_poll_interval,
            );
            tasks.push(tokio::spawn(poll));
        }
        if let Some((listener, cert)) = self.secure {
            let acceptor = TlsAcceptor::from(cert.server_config()?);
            tasks.push(tokio::spawn(
                Arc::clone(&cert).watch(self.config.cert_poll_interval),
            ));
            if let Some(renewal) = self.config.renewal.clone() {
                tasks.push(tokio::spawn(renewal_task(&state, &self.config, renewal)));
            }
            tasks.push(tokio::spawn(server::serve_tls(
                listener,
                acceptor,
                Arc::clone(&state),
            )));
        }
        if let Some(listener) = self.plain {
            tasks.push(tokio::spawn(server::serve_plain(
                listener,
                Arc::clone(&state),
            )));
        }
        // Every task loops forever; the first to end (a panic) ends the hub.
        let (result, _, _) = futures::future::select_all(tasks).await;
        Err(HubError::Config(format!(
            "a hub task ended unexpectedly: {result:?}"
        )))
    }
}

/// The renewal loop for the serving pair, over the hub's own upstream client and identity.
fn renewal_task(
    state: &State,
    config: &HubConfig,
    renewal: CsrSettings,
) -> impl std::future::Future<Output = ()> + use<> {
    let api = bootstrap::Api::new(
        state.clients.pooled.clone(),
        Arc::clone(&state.upstreams),
        state.own_token.clone(),
        config.health.timeout.max(REQUEST_TIMEOUT),
    );
    let files = bootstrap::CertFiles {
        cert: config.cert_file.clone().unwrap_or_default(),
        key: config.key_file.clone().unwrap_or_default(),
    };
    bootstrap::run_renewal(api, renewal, files)
}

/// Bound of one certificates-API request during renewal.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the hub's state for the admin endpoint.
#[derive(Debug, Clone)]
pub struct StatusHandle(Arc<State>);

impl StatusHandle {
    pub fn status(&self) -> HubStatus {
        let state = &self.0;
        let upstreams = state
            .upstreams
            .iter()
            .zip(state.health.states())
            .map(|(u, s)| UpstreamStatus {
                url: u.url.clone(),
                healthy: s.healthy,
                consecutive_failures: s.failures,
            })
            .collect();
        HubStatus {
            online: state.health.is_online(),
            upstreams,
            cache_agents_flags: state.agents.flags().render(),
            cache_agents_config_map: state.agents.config_map().render(),
            cache: state.cache.stats(),
        }
    }

    pub fn is_online(&self) -> bool {
        self.0.health.is_online()
    }

    /// `/readyz`: whether the hub can answer, and why. Online it forwards; offline it is ready
    /// only while its cache holds something to serve.
    pub fn readiness(&self) -> Result<String, String> {
        let status = self.status();
        readiness(status.online, &status.upstreams, &status.cache)
    }

    /// Blocks until every cache write queued so far is on disk (call before a clean exit).
    pub fn flush_cache(&self) {
        self.0.cache.flush();
    }
}

fn readiness(
    online: bool,
    upstreams: &[UpstreamStatus],
    cache: &CacheStats,
) -> Result<String, String> {
    if online {
        let healthy: Vec<&str> = upstreams
            .iter()
            .filter(|u| u.healthy)
            .map(|u| u.url.as_str())
            .collect();
        return Ok(format!("online: forwarding to {}", healthy.join(", ")));
    }
    if cache.objects > 0 {
        let age = match cache.seconds_since_update {
            Some(seconds) => format!("last updated from upstream {seconds} s ago"),
            None => "loaded from disk, not updated since this hub started".to_owned(),
        };
        return Ok(format!(
            "offline: serving {} cached objects ({age}) until an upstream is healthy again",
            cache.objects
        ));
    }
    Err("offline and nothing cached: no upstream is healthy and the cache is empty".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_upstreams_and_cache() {
        let up = |healthy| UpstreamStatus {
            url: "https://cloud:6443".into(),
            healthy,
            consecutive_failures: 0,
        };
        let cache = |objects, seconds_since_update| CacheStats {
            objects,
            seconds_since_update,
            ..CacheStats::default()
        };
        let ready = readiness(true, &[up(true)], &cache(0, None)).unwrap();
        assert!(
            ready.contains("online: forwarding to https://cloud:6443"),
            "{ready}"
        );
        let cached = readiness(false, &[up(false)], &cache(12, Some(42))).unwrap();
        assert!(
            cached.contains("serving 12 cached objects (last updated from upstream 42 s ago)"),
            "{cached}"
        );
        let loaded = readiness(false, &[up(false)], &cache(3, None)).unwrap();
        assert!(loaded.contains("loaded from disk"), "{loaded}");
        let err = readiness(false, &[up(false)], &cache(0, None)).unwrap_err();
        assert!(err.contains("nothing cached"), "{err}");
    }
}
