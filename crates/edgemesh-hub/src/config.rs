//! Settings of the hub, with YurtHub's defaults where it has one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_host::{HostSockets, SocketFactory};

use crate::bootstrap::CsrSettings;
use crate::error::HubError;
use crate::health::HealthConfig;
use crate::upstream::Upstream;

/// Default HTTPS address for pods (edge-hub's and YurtHub's).
pub const DEFAULT_SECURE_ADDR: &str = "169.254.2.1:10268";
/// Default plain-HTTP address for node components (YurtHub's proxy port).
pub const DEFAULT_INSECURE_ADDR: &str = "127.0.0.1:10261";
/// Default cache directory (YurtHub's `--disk-cache-path`, edge-hub's documented path).
pub const DEFAULT_CACHE_DIR: &str = "/etc/kubernetes/cache";

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// HTTPS listener (needs `cert_file` and `key_file`); `None` disables it.
    pub secure_addr: Option<SocketAddr>,
    /// Plain HTTP listener; `None` disables it.
    pub insecure_addr: Option<SocketAddr>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Upstream apiserver URLs, in failover order.
    pub server_addrs: Vec<String>,
    /// PEM bundle of the CA(s) that sign the upstreams' serving certificates.
    pub ca_file: Option<PathBuf>,
    /// Bearer token file: the node's identity, for the hub's own requests (reading the
    /// ConfigMap) and for plain-front clients without credentials.
    pub token_file: Option<PathBuf>,
    pub cache_dir: PathBuf,
    /// `cache_agents` from the command line (comma separated, `*` = all).
    pub cache_agents: String,
    /// `namespace/name` of the ConfigMap with `cache_agents`; `None` disables it.
    pub config_map: Option<(String, String)>,
    pub config_poll_interval: Duration,
    pub health: HealthConfig,
    pub connect_timeout: Duration,
    pub bookmark_interval: Duration,
    /// How long an upstream answer that the hub buffers for its cache may go without a byte
    /// before the request fails with 504 (a stalled upstream must not hold it forever).
    pub body_stall_timeout: Duration,
    /// How much of a cached agent's get/list answer is buffered before it streams on, and the
    /// size past which it is passed on without being cached.
    pub answer_limits: AnswerLimits,
    pub cert_poll_interval: Duration,
    /// Renew the serving certificate through the certificates API before it expires
    /// (`--rotate-server-certificate`); `None`: the files are someone else's business.
    pub renewal: Option<CsrSettings>,
    /// Where the listeners come from (plain host sockets by default).
    pub sockets: Arc<dyn SocketFactory>,
}

/// How much of a cached agent's answer the hub holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerLimits {
    /// Answers up to this size are buffered whole before the client sees them.
    pub buffered: usize,
    /// Answers bigger than this are passed on but not cached: parsing one for the cache would
    /// take several times its size in memory.
    pub cached: usize,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        Self {
            buffered: 4 << 20,
            cached: 128 << 20,
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            secure_addr: DEFAULT_SECURE_ADDR.parse().ok(),
            insecure_addr: DEFAULT_INSECURE_ADDR.parse().ok(),
            cert_file: None,
            key_file: None,
            server_addrs: Vec::new(),
            ca_file: None,
            token_file: None,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            cache_agents: String::new(),
            config_map: Some(("kube-system".into(), "edge-hub-cfg".into())),
            config_poll_interval: Duration::from_secs(10),
            health: HealthConfig::default(),
            connect_timeout: Duration::from_secs(2),
            bookmark_interval: Duration::from_secs(10),
            body_stall_timeout: Duration::from_secs(30),
            answer_limits: AnswerLimits::default(),
            cert_poll_interval: Duration::from_secs(5),
            renewal: None,
            sockets: Arc::new(HostSockets::default()),
        }
    }
}

impl HubConfig {
    /// What `edgemesh hub --check-config` reads without starting anything: the settings, the
    /// serving certificate and key, the upstream CA. Errors stop the hub; the warnings (a token
    /// file not there yet: it is read at each use) do not.
    pub fn check(&self) -> Result<Vec<String>, HubError> {
        self.validate()?;
        if let (Some(_), Some(cert), Some(key)) =
            (&self.secure_addr, &self.cert_file, &self.key_file)
        {
            crate::tls::ReloadingCert::load(cert, key)?;
        }
        crate::upstream::clients(self.ca_file.as_deref(), self.health.timeout)?;
        let mut warnings = Vec::new();
        if let Some(token) = &self.token_file
            && let Err(e) = std::fs::metadata(token)
        {
            warnings.push(format!(
                "--token-file {}: {e} (read at each request; node components are forwarded anonymously until it exists)",
                token.display()
            ));
        }
        Ok(warnings)
    }

    /// Checks the settings and parses the upstream URLs.
    pub fn validate(&self) -> Result<Vec<Upstream>, HubError> {
        let bad = |m: &str| Err(HubError::Config(m.to_string()));
        if self.server_addrs.is_empty() {
            return bad(
                "--server-addr is required (the upstream apiserver URL, e.g. https://10.0.0.1:6443)",
            );
        }
        if self.secure_addr.is_none() && self.insecure_addr.is_none() {
            return bad("both listeners are disabled; set --secure-addr or --insecure-addr");
        }
        if self.secure_addr.is_some() && (self.cert_file.is_none() || self.key_file.is_none()) {
            return bad(
                "the HTTPS listener needs --cert-file and --key-file (or disable it with --secure-addr '')",
            );
        }
        if self.renewal.is_some() && self.secure_addr.is_none() {
            return bad("--rotate-server-certificate needs the HTTPS listener (--secure-addr)");
        }
        let h = &self.health;
        if h.interval.is_zero()
            || h.timeout.is_zero()
            || h.failure_threshold == 0
            || h.success_threshold == 0
        {
            return bad("health probe interval, timeout and thresholds must be greater than zero");
        }
        self.server_addrs
            .iter()
            .map(|u| Upstream::parse(u))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let mut config = HubConfig::default();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("--server-addr"), "{err}");
        config.server_addrs = vec!["https://192.0.2.1:6443".into()];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("--cert-file"), "{err}");
        config.secure_addr = None;
        assert_eq!(config.validate().unwrap().len(), 1);
        config.server_addrs.push("nonsense".into());
        assert!(config.validate().is_err());
    }
}
