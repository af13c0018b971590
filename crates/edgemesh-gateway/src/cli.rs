//! The command line of `edgemesh gateway`: its flags, and the config file and flags read into
//! the gateway's settings ([`crate::settings`] starts it).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use edgemesh_config::{
    ConfigErrors, DEFAULT_GATEWAY_CONFIG_PATH, Env, PreparedGateway, SourceArgs, prepare_gateway,
};
use edgemesh_telemetry::LogArgs;

use crate::settings::GatewaySettings;

/// Where the gateway's pod labels are, when its manifest mounts them with the Downward API.
const DEFAULT_LABELS_FILE: &str = "/etc/podinfo/labels";

/// The gateway's own state directory: the agent on the same node keeps its key elsewhere.
const STATE_DIR: &str = "/var/lib/edgemesh-gateway";

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
    #[arg(long, env = "EDGEMESH_GATEWAY_STATE_DIR", default_value = STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,

    /// Read and validate the config file and flags, print every warning, and exit: 0 when the
    /// gateway would start, 2 when it would refuse.
    #[arg(long)]
    pub check_config: bool,

    #[command(flatten)]
    pub log: LogArgs,
}

impl GatewayArgs {
    /// The config file (EdgeMesh's path unless given) with the flags applied, validated, and
    /// the gateway enabled in it; each error names the key, the value and what is allowed.
    pub fn prepare(&self) -> Result<PreparedGateway, ConfigErrors> {
        let sources = &self.sources;
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

    /// What the gateway runs with: `prepared` and the gateway's own flags.
    pub fn settings(&self, prepared: &PreparedGateway) -> GatewaySettings {
        let fixed = self.listen_addresses.clone();
        GatewaySettings::from_config(prepared, fixed, self.labels_file.clone())
    }
}
