//! `edgemesh gateway`: EdgeMesh's ingress gateway (crate `edgemesh-gateway`) fed by the same
//! sources and Snapshot as the agent, reading the ingress kinds too.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use edgemesh_config::{
    ConfigErrors, DEFAULT_GATEWAY_CONFIG_PATH, Env, ListenAddresses, PreparedGateway, SourceArgs,
    prepare_gateway,
};
use edgemesh_gateway::{Backends, Identity, Shared};
use edgemesh_kube::target::ApiTarget;
use edgemesh_kube::{Inputs, Publisher};
use edgemesh_lb::LoadBalancer;
use edgemesh_model::BuildOptions;
use edgemesh_proxy::connect::DialLimits;
use edgemesh_proxy::{Dialer, DirectDialer};
use edgemesh_telemetry::{AdminServer, Liveness, Readout, Reply};
use edgemesh_tunnel::settings::TunnelSettings;
use edgemesh_tunnel::{PeersView, TunnelDialer};
use tokio::sync::mpsc;

use crate::logs::LogArgs;
use crate::process;

/// Window in which source events are batched into one Snapshot rebuild.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Where the gateway's pod labels are, when its manifest mounts them with the Downward API.
const DEFAULT_LABELS_FILE: &str = "/etc/podinfo/labels";

/// Flags of `edgemesh gateway`. Flags override the config file. Those it shares with the agent
/// are the agent's [`SourceArgs`], reworded here for the gateway.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("config", |a| a
        .help(
            "EdgeMesh gateway config file (apiVersion gateway.edgemesh.config.kubeedge.io/v1alpha1, \
             kind EdgeMeshGateway), as EdgeMesh's ConfigMap edgemesh-gateway-cfg mounts it"
        )
        .default_value(DEFAULT_GATEWAY_CONFIG_PATH)),
    mut_arg("node_name", |a| a.help("Name of the node this gateway runs on (falls back to the host name)")),
    mut_arg("manifests", |a| a.help(
        "Directory of YAML manifests (Services, EndpointSlices, Endpoints, DestinationRules, \
         Gateways, VirtualServices, TLS Secrets), watched live. Alone, it runs with no API server"
    )),
    mut_arg("admin_addr", |a| a.help(
        "Address of the admin endpoint (/healthz, /readyz, /metrics, /debug/routes, \
         /debug/snapshot; default commonConfig.adminAddr, 127.0.0.1:10558). Port 0 picks a free \
         port; the chosen address is logged"
    )),
)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub sources: SourceArgs,

    /// Listen on these addresses instead of those modules.edgeGateway's nic, includeIP and
    /// excludeIP choose (repeatable).
    #[arg(long = "listen-address", value_name = "IP")]
    pub listen_addresses: Vec<IpAddr>,

    /// This gateway's labels, which Gateways' `selector` must match, as the Downward API
    /// writes them (`key="value"` lines). A missing file is not an error. The labels
    /// `kubeedge=edgemesh-gateway` (EdgeMesh's gateway pod label) always apply.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_LABELS_FILE)]
    pub labels_file: PathBuf,

    /// Directory for state kept across restarts: the gateway's tunnel key and peer pins (its own:
    /// the agent on the same node keeps its key elsewhere).
    #[arg(
        long,
        env = "EDGEMESH_GATEWAY_STATE_DIR",
        default_value = "/var/lib/edgemesh-gateway",
        value_name = "DIR"
    )]
    pub state_dir: PathBuf,

    /// Read and validate the config file and flags, print every warning, and exit: 0 when the
    /// gateway would start, 2 when it would refuse.
    #[arg(long)]
    pub check_config: bool,

    #[command(flatten)]
    pub log: LogArgs,
}

pub fn main(args: GatewayArgs) -> ExitCode {
    let loaded = load(&args);
    let checked = process::settle_config("edgemesh gateway", loaded, args.check_config, |p| {
        p.warning_lines()
    });
    let prepared = match checked {
        Ok(prepared) => prepared,
        Err(exit) => return exit,
    };
    let log = args.log.clone();
    process::run_role(&log, || run(prepared, args))
}

fn load(args: &GatewayArgs) -> Result<PreparedGateway, ConfigErrors> {
    let sources = &args.sources;
    let config = sources
        .config
        .as_deref()
        .unwrap_or(Path::new(DEFAULT_GATEWAY_CONFIG_PATH));
    let prepared = prepare_gateway(config, &sources.overrides(), &Env::from_process())?;
    prepared
        .require_enabled()
        .map_err(|error| ConfigErrors(vec![error]))?;
    Ok(prepared)
}

async fn run(prepared: PreparedGateway, args: GatewayArgs) -> anyhow::Result<()> {
    for warning in prepared.warning_lines() {
        tracing::warn!(%warning, "config");
    }
    tracing::info!(node = %prepared.node.name, version = env!("CARGO_PKG_VERSION"), "starting edgemesh gateway");
    let api = prepared.discovery.api.clone().map(|endpoint| {
        ApiTarget::from_endpoint(
            endpoint,
            &prepared.config.kube_api_config.meta_server.security,
        )
    });
    let manifests = prepared.discovery.manifests.clone();
    let sources = crate::sources::ids(api.as_ref(), manifests.as_ref());
    let publisher = Publisher::new(&sources, Inputs::Gateway, BuildOptions::default(), DEBOUNCE);
    let mut registry = edgemesh_telemetry::role_registry("gateway");
    publisher.register(&mut registry);
    let liveness = Liveness::default();

    let hash = edgemesh_proxy::settings::consistent_hash_of(
        &prepared.config.modules.edge_gateway.load_balancer,
    );
    let balancer = Arc::new(LoadBalancer::new(hash).context("modules.edgeGateway.loadBalancer")?);
    let sockets = Arc::new(edgemesh_host::HostSockets::default());
    let limits = DialLimits {
        attempts: 3,
        timeout: Duration::from_secs(5),
    };
    let direct = DirectDialer::new(sockets);
    let tunnel = match TunnelSettings::for_gateway(&prepared, args.state_dir.clone()) {
        Some(settings) => {
            let name = prepared.tunnel_node_name();
            let tunnel = edgemesh_tunnel::settings::start(&settings, &name, publisher.cell())?;
            let watched = tunnel.handle();
            liveness.check("tunnel driver", move || watched.driver_running());
            tracing::info!(peer = %name, port = settings.listen_port, "gateway tunnel started: endpoints on other nodes are reached through it");
            Some(tunnel)
        }
        None => None,
    };
    let dialer: Arc<dyn Dialer> = match &tunnel {
        Some(t) => Arc::new(TunnelDialer::on_node(
            direct,
            t.handle(),
            &prepared.node.name,
        )),
        None => Arc::new(direct),
    };
    let backends = Backends::new(publisher.cell(), balancer, dialer, limits);
    let metrics = edgemesh_gateway::metrics::Metrics::register(&mut registry);
    let shared = Arc::new(Shared::new(backends, metrics));
    let identity = identity(&args.labels_file);
    tracing::info!(labels = ?identity.labels, "gateway identity (Gateways select by these labels)");
    warn_unmatched_nics(&prepared.listen);
    let listen = prepared.listen.clone();
    let fixed = args.listen_addresses.clone();
    let addresses = move || listen_addresses(&listen, &fixed);
    liveness.spawn(
        "gateway",
        edgemesh_gateway::run(
            Arc::clone(&shared),
            identity,
            publisher.subscribe(),
            addresses,
        ),
    );

    let peers = tunnel.as_ref().map(|t| {
        let view = PeersView::start(t.handle());
        view.register(&mut registry);
        view
    });
    let admin = admin_routes(&publisher, Arc::clone(&shared), peers, liveness.clone())
        .metrics(Arc::new(registry));
    let (events, rx) = mpsc::channel(1024);
    liveness.spawn("publisher", publisher.run(rx));
    crate::sources::start(api.as_ref(), manifests, events, Inputs::Gateway).await?;
    let admin_addr = prepared.admin_addr();
    let (addr, serving) = admin
        .bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen on admin address {admin_addr}"))?;
    // Tests and scripts read the address from this message: keep it in the text.
    tracing::info!("admin endpoint listening on {addr}");
    tokio::spawn(serving);
    process::shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(tunnel) = tunnel {
        tunnel.stop();
    }
    Ok(())
}

/// `--listen-address` when given, else what the config chooses among the interfaces' addresses
/// (read again on every call: the gateway follows address changes).
fn listen_addresses(config: &ListenAddresses, fixed: &[IpAddr]) -> Vec<IpAddr> {
    if !fixed.is_empty() {
        return fixed.to_vec();
    }
    match edgemesh_host::net::named_interface_addresses() {
        Ok(interfaces) => config.select(&interfaces),
        Err(error) => {
            tracing::warn!(%error, "cannot list the interfaces' addresses");
            Vec::new()
        }
    }
}

/// EdgeMesh logs and skips a `nic` that does not exist; so do we, once at start.
fn warn_unmatched_nics(listen: &ListenAddresses) {
    if let Ok(interfaces) = edgemesh_host::net::named_interface_addresses() {
        for nic in listen.unmatched_nics(&interfaces) {
            tracing::warn!(
                nic,
                "modules.edgeGateway.nic names an interface without addresses here; skipped"
            );
        }
    }
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

/// The agent's admin routes (health, readiness, snapshot, tunnel peers) plus the gateway's own
/// `/debug/routes`.
fn admin_routes(
    publisher: &Publisher,
    shared: Arc<Shared>,
    peers: Option<Arc<PeersView>>,
    liveness: Liveness,
) -> AdminServer {
    crate::agent::admin::routes(
        publisher.cell(),
        publisher.readiness(),
        None,
        peers,
        liveness,
    )
    .route("/debug/routes", move || {
        Reply::json(edgemesh_gateway::debug::routes_json(&shared))
    })
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
