//! What the agent runs with: the config file, the defaults and the flags, resolved and validated.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use edgemesh_config::{ConfigErrors, Env, Prepared, prepare};
use edgemesh_dns::DnsSettings;
use edgemesh_kube::source::Sources;
use edgemesh_model::ServiceFilterMode;
use edgemesh_netfilter::settings::ProxierSettings;
use edgemesh_proxy::settings::ProxySettings;
use edgemesh_tunnel::settings::TunnelSettings;

use crate::cli::AgentArgs;

/// The resolved settings of one agent run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    pub filter_mode: ServiceFilterMode,
    /// `modules.edgeProxy.edgeHubAddress`: where the `default/kubernetes` Service is sent.
    pub apiserver_via: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub sources: Sources,
    /// `modules.edgeProxy`, the proxy's and the proxier's; `None` when its `enable` is false.
    pub proxy: Option<(ProxySettings, ProxierSettings)>,
    /// `None` when `modules.edgeDNS.enable` is false.
    pub dns: Option<DnsSettings>,
    /// `None` when `modules.edgeTunnel.enable` is false.
    pub tunnel: Option<TunnelSettings>,
    /// `commonConfig.bridgeDeviceName` and `bridgeDeviceIP`: the device DNS and SOCKS5 serve on
    /// (what `--cleanup` removes).
    pub bridge_device: (String, IpAddr),
    /// Non-fatal findings (unknown keys, fallbacks) to log once logging is up.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Loads the config file (or the edge-node defaults), applies the flags and validates,
    /// before anything on the host is touched. Each error line names the key, the value and
    /// what is allowed.
    pub fn load(args: &AgentArgs) -> Result<Self, ConfigErrors> {
        let sources = &args.sources;
        let prepared = prepare(
            sources.config.as_deref(),
            &sources.overrides(),
            &Env::from_process(),
        )?;
        Ok(Self::from_prepared(prepared, args.state_dir.clone()))
    }

    fn from_prepared(prepared: Prepared, state_dir: PathBuf) -> Self {
        let config = &prepared.config;
        let node_name = &prepared.node.name;
        let proxy_config = &config.modules.edge_proxy;
        Self {
            dns: DnsSettings::from_config(config, node_name),
            node_name: node_name.clone(),
            filter_mode: proxy_config.service_filter_mode.get().unwrap_or_default(),
            apiserver_via: proxy_config.edge_hub_address.as_ref().and_then(|a| a.get()),
            admin_addr: prepared.admin_addr(),
            sources: Sources::of(&prepared),
            proxy: proxy_config.enable.then(|| {
                (
                    ProxySettings::from_config(proxy_config),
                    ProxierSettings::from_config(proxy_config),
                )
            }),
            tunnel: TunnelSettings::from_config(config, state_dir),
            bridge_device: edgemesh_dns::settings::bridge_device(config),
            warnings: prepared.warning_lines(),
        }
    }
}
