//! Building a Kubernetes client for each way the agent can reach an API server.

mod meta_server;

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use meta_server::{MetaServerTls, SERVICE_ACCOUNT_TOKEN, for_meta_server};

/// Why no client could be built; names the input that was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("API server URL '{url}' is invalid: {message}")]
    Url { url: String, message: String },
    #[error("in-cluster configuration unavailable: {0}")]
    InCluster(String),
    #[error("cannot create a Kubernetes client: {0}")]
    Client(String),
    /// A file named by `kubeAPIConfig.metaServer.security` is unreadable or invalid.
    #[error("{key} {path}: {message}")]
    TlsFile {
        key: &'static str,
        path: String,
        message: String,
    },
}

/// A client from a kubeconfig file (its current context).
pub async fn from_kubeconfig(path: &Path) -> Result<Client, ClientError> {
    let err = |message: String| ClientError::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    build(config)
}

/// A client for a plain URL: `kubeAPIConfig.master`, KubeEdge's metaServer or the edge hub.
pub fn from_url(url: &str) -> Result<Client, ClientError> {
    build(Config::new(parse_url(url)?))
}

fn parse_url(url: &str) -> Result<http::Uri, ClientError> {
    url.parse()
        .map_err(|e: http::uri::InvalidUri| ClientError::Url {
            url: url.into(),
            message: e.to_string(),
        })
}

/// The pod's service account (`KUBERNETES_SERVICE_HOST`, token and CA files).
pub fn in_cluster() -> Result<Client, ClientError> {
    let config = Config::incluster().map_err(|e| ClientError::InCluster(e.to_string()))?;
    build(config)
}

/// What the agent says it is: the edge hub caches by User-Agent (`cache_agents`), so an agent
/// pointed at the hub can list `edgemesh-agent` and restart offline from the cache.
pub const USER_AGENT: &str = concat!("edgemesh-agent/", env!("CARGO_PKG_VERSION"));

fn build(mut config: Config) -> Result<Client, ClientError> {
    use_ring_for_tls();
    // kube's own retry layer re-sends a request answered 429/503/504 up to 15 times with a
    // delay doubling to 1,000 s, unseen by the watchers: after an apiserver outage the agent
    // waited that long before asking again. The watchers' retry policy (source::api) handles
    // those answers itself, asking again every second.
    config.default_retry = false;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    Client::try_from(config).map_err(|e| ClientError::Client(e.to_string()))
}

/// kube builds its TLS configuration with rustls' process-wide default provider, which rustls
/// cannot choose when two are linked (ring, ours; aws-lc-rs, brought by libp2p's QUIC): it
/// panics. Install ring once; a second call finds it installed and changes nothing.
fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
