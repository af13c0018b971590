//! EdgeMesh's gateway config (`modules.edgeGateway`) and the gateway's own flags as the gateway
//! reads them, and the gateway started from them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edgemesh_config::{ListenAddresses, PreparedGateway};
use edgemesh_lb::{ConfigError, ConsistentHashConfig, LoadBalancer};
use edgemesh_model::{Snapshot, SnapshotCell};
use edgemesh_proxy::Dialer;
use edgemesh_proxy::connect::DialLimits;
use edgemesh_telemetry::{Liveness, Registry};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::{Backends, Identity, Shared};

/// How often and how long a backend is dialed before the request fails.
const DIAL_LIMITS: DialLimits = DialLimits {
    attempts: 3,
    timeout: Duration::from_secs(5),
};

/// What the gateway runs with.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// The ring of `modules.edgeGateway.loadBalancer`.
    pub consistent_hash: ConsistentHashConfig,
    /// `modules.edgeGateway`'s `nic`, `includeIP` and `excludeIP`.
    pub listen: ListenAddresses,
    /// `--listen-address`: these addresses instead of those `listen` chooses, when given.
    pub fixed_addresses: Vec<IpAddr>,
    /// `--labels-file`: the pod's labels as the Downward API writes them.
    pub labels_file: PathBuf,
}

impl GatewaySettings {
    pub fn from_config(
        prepared: &PreparedGateway,
        fixed_addresses: Vec<IpAddr>,
        labels_file: PathBuf,
    ) -> Self {
        let balancer = &prepared.config.modules.edge_gateway.load_balancer;
        Self {
            consistent_hash: edgemesh_proxy::settings::consistent_hash_of(balancer),
            listen: prepared.listen.clone(),
            fixed_addresses,
            labels_file,
        }
    }

    /// `--listen-address` when given, else what the config chooses among the interfaces'
    /// addresses (read again on every call: the gateway follows address changes).
    fn addresses(&self) -> Vec<IpAddr> {
        if !self.fixed_addresses.is_empty() {
            return self.fixed_addresses.clone();
        }
        match edgemesh_host::net::named_interface_addresses() {
            Ok(interfaces) => self.listen.select(&interfaces),
            Err(error) => {
                tracing::warn!(%error, "cannot list the interfaces' addresses");
                Vec::new()
            }
        }
    }

    /// EdgeMesh logs and skips a `nic` that does not exist; so do we, once at start.
    fn warn_unmatched_nics(&self) {
        if let Ok(interfaces) = edgemesh_host::net::named_interface_addresses() {
            for nic in self.listen.unmatched_nics(&interfaces) {
                tracing::warn!(
                    nic,
                    "modules.edgeGateway.nic names an interface without addresses here; skipped"
                );
            }
        }
    }
}

/// Starts the gateway (watched by `liveness`): it compiles its table from each Snapshot of
/// `updates`, listens where `settings` say and dials backends of `cell` with `dialer`. Its
/// metrics go to `registry`; the returned state is what `/debug/routes` shows.
pub fn start(
    settings: GatewaySettings,
    cell: Arc<SnapshotCell>,
    updates: watch::Receiver<Arc<Snapshot>>,
    dialer: Arc<dyn Dialer>,
    registry: &mut Registry,
    liveness: &Liveness,
) -> Result<Arc<Shared>, ConfigError> {
    let balancer = Arc::new(LoadBalancer::new(settings.consistent_hash)?);
    let backends = Backends::new(cell, balancer, dialer, DIAL_LIMITS);
    let shared = Arc::new(Shared::new(backends, Metrics::register(registry)));
    let identity = identity(&settings.labels_file);
    tracing::info!(labels = ?identity.labels, "gateway identity (Gateways select by these labels)");
    settings.warn_unmatched_nics();
    let addresses = move || settings.addresses();
    let running = crate::run(Arc::clone(&shared), identity, updates, addresses);
    liveness.spawn("gateway", running);
    Ok(shared)
}

/// EdgeMesh's gateway label plus the pod's labels from the Downward API file, when present.
fn identity(labels_file: &Path) -> Identity {
    let mut identity = Identity::edgemesh_default();
    match std::fs::read_to_string(labels_file) {
        Ok(text) => identity.labels.extend(parse_labels(&text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(file = %labels_file.display(), %error, "cannot read the gateway's labels")
        }
    }
    identity
}

/// The Downward API's `key="value"` lines (values quoted as Go's `%q` writes them).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((key.trim().to_string(), value.replace("\\\"", "\"")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_api_labels_are_read() {
        let text = "app=\"gw\"\nkubeedge=\"edgemesh-gateway\"\npod-template-hash=\"5d8f\"\n";
        let labels = parse_labels(text);
        assert_eq!(labels.get("app").map(String::as_str), Some("gw"));
        assert_eq!(labels.len(), 3);
    }
}
