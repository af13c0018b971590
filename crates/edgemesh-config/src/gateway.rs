//! EdgeMesh's gateway config file (`EdgeMeshGateway` v1alpha1), read with the agent's machinery:
//! the same `kubeAPIConfig` and `modules.edgeTunnel` types, unknown-key warnings, flag
//! overrides, validation rules, node name and discovery.
//!
//! In EdgeMesh's manifests it is key `edgemesh-gateway.yaml` of ConfigMap
//! `kubeedge/edgemesh-gateway-cfg`, mounted at [`DEFAULT_GATEWAY_CONFIG_PATH`].

mod listen;
mod prepare;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::checked::{Checked, Port};
use crate::discovery::discover;
use crate::error::{ConfigError, ConfigErrors, Warning};
use crate::from_flags::FromFlags;
use crate::load::known::{self, Notice};
use crate::load::{ConfigFile, FileKind, GATEWAY_FILE, Parsed};
use crate::validate::{Collector, check_consistent_hash, check_kube_api, check_tunnel};
use crate::{
    CONTENT_TYPE_PROTOBUF, Discovery, EdgeTunnel, Env, GATEWAY_API_VERSION, GATEWAY_KIND,
    KubeApiConfig, LoadBalancer, Loaded, PprofConfig, RunningMode, nullable,
};

pub use listen::ListenAddresses;
pub use prepare::{PreparedGateway, prepare_gateway, prepare_gateway_with};

/// Where EdgeMesh's gateway reads its file (its `--config-file` default).
pub const DEFAULT_GATEWAY_CONFIG_PATH: &str = "/etc/edgemesh/config/edgemesh-gateway.yaml";
/// Default admin endpoint of the gateway: EdgeMesh runs it with `hostNetwork: true`, often on a
/// node with an agent, so it must not take the agent's 10557.
pub const DEFAULT_GATEWAY_ADMIN_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10558));

/// Keys EdgeMesh's gateway fills at run time (besides the ones it shares with the agent).
const RUNTIME_KEYS: &[&str] = &[
    "modules.edgeGateway.loadBalancer.caller",
    "modules.edgeGateway.loadBalancer.nodeName",
];

/// The gateway config: EdgeMesh's `EdgeMeshGateway` v1alpha1 plus `commonConfig.adminAddr`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayConfig {
    pub api_version: String,
    pub kind: String,
    #[serde(rename = "kubeAPIConfig", deserialize_with = "nullable")]
    pub kube_api_config: KubeApiConfig,
    /// edgemesh extension (EdgeMesh's gateway has no `commonConfig`).
    #[serde(deserialize_with = "nullable")]
    pub common_config: GatewayCommonConfig,
    /// EdgeMesh's gateway keeps it at the top level; accepted, not acted on.
    #[serde(deserialize_with = "nullable")]
    pub pprof_config: PprofConfig,
    #[serde(deserialize_with = "nullable")]
    pub modules: GatewayModules,
    /// Directory of YAML manifests to serve from (flag `--manifests` only; not a file key).
    #[serde(skip)]
    pub manifests: Option<PathBuf>,
    #[serde(skip)]
    pub(crate) from_flags: FromFlags,
}

impl Default for GatewayConfig {
    /// EdgeMesh's defaults on an edge node (what `load` starts from in [`RunningMode::Edge`]).
    fn default() -> Self {
        Self {
            api_version: GATEWAY_API_VERSION.to_owned(),
            kind: GATEWAY_KIND.to_owned(),
            kube_api_config: KubeApiConfig::default(),
            common_config: GatewayCommonConfig::default(),
            pprof_config: PprofConfig::default(),
            modules: GatewayModules::default(),
            manifests: None,
            from_flags: FromFlags::default(),
        }
    }
}

/// `commonConfig` of the gateway (edgemesh extension).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayCommonConfig {
    /// Admin endpoint (`/healthz`, `/readyz`, `/metrics`, debug pages).
    pub admin_addr: Checked<SocketAddr>,
}

impl Default for GatewayCommonConfig {
    fn default() -> Self {
        Self {
            admin_addr: Checked::new(DEFAULT_GATEWAY_ADMIN_ADDR),
        }
    }
}

/// `modules` of the gateway.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayModules {
    #[serde(deserialize_with = "nullable")]
    pub edge_gateway: EdgeGatewayModule,
    /// The agent's tunnel module; EdgeMesh's gateway joins the tunnel as `<node>-gateway`.
    #[serde(deserialize_with = "nullable")]
    pub edge_tunnel: EdgeTunnel,
}

/// `modules.edgeGateway`. `nic`, `includeIP` and `excludeIP` are kept as written;
/// [`EdgeGatewayModule::listen_addresses`] parses them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EdgeGatewayModule {
    /// EdgeMesh's default is false: a file without it runs no gateway.
    pub enable: bool,
    /// `*` (or empty) for every interface, else a comma list such as `lo,eth0`.
    pub nic: String,
    /// `*` (or empty) for every address, else a comma list of IPs and CIDRs.
    #[serde(rename = "includeIP")]
    pub include_ip: String,
    /// `*` or empty for none, else a comma list of IPs and CIDRs.
    #[serde(rename = "excludeIP")]
    pub exclude_ip: String,
    #[serde(deserialize_with = "nullable")]
    pub load_balancer: LoadBalancer,
}

impl Default for EdgeGatewayModule {
    fn default() -> Self {
        Self {
            enable: false,
            nic: "*".to_owned(),
            include_ip: "*".to_owned(),
            exclude_ip: "*".to_owned(),
            load_balancer: LoadBalancer::default(),
        }
    }
}

impl ConfigFile for GatewayConfig {
    const FILE: FileKind = GATEWAY_FILE;
    fn type_meta(&self) -> (&str, &str) {
        (&self.api_version, &self.kind)
    }
}

impl GatewayConfig {
    /// EdgeMesh's defaults (`NewDefaultEdgeMeshGatewayConfig`): the gateway and the tunnel
    /// off; JSON to the API on edge nodes, protobuf on cloud nodes.
    pub fn defaults(mode: RunningMode) -> Self {
        let mut config = Self::default();
        if mode == RunningMode::Cloud {
            config.kube_api_config.content_type = CONTENT_TYPE_PROTOBUF.to_owned();
        }
        config
    }

    /// Reads and parses `path` on top of EdgeMesh's defaults for `mode`. Does not validate.
    /// An `EdgeMeshAgent` file is an error naming its kind.
    pub fn load(path: &Path, mode: RunningMode) -> Result<Loaded<Self>, ConfigError> {
        let text = crate::load::read_text(path)?;
        Self::from_yaml(&text, &path.display().to_string(), mode)
    }

    /// Parses `text`; `file` names it in errors. Keys absent from the text keep EdgeMesh's
    /// defaults for `mode`.
    pub fn from_yaml(
        text: &str,
        file: &str,
        mode: RunningMode,
    ) -> Result<Loaded<Self>, ConfigError> {
        let Parsed {
            mut config,
            ignored,
            present,
            mut warnings,
        } = crate::load::parse::<Self>(text, file)?;
        if mode == RunningMode::Cloud && !present.content_type {
            config.kube_api_config.content_type = CONTENT_TYPE_PROTOBUF.to_owned();
        }
        warnings.extend(
            ignored
                .iter()
                .map(|k| known::classify_in(k, RUNTIME_KEYS, &[])),
        );
        warnings.extend(config.notices());
        Ok(Loaded { config, warnings })
    }

    /// Settings that are valid but that edgemesh does not act on, or that cannot match.
    fn notices(&self) -> Vec<Warning> {
        let pprof = known::pprof_not_applied(&self.pprof_config, "pprofConfig.enableProfiling");
        let api = known::api_not_applied(&self.kube_api_config);
        let mut out = known::raised(std::iter::once::<Notice>(pprof).chain(api));
        out.extend(known::tunnel_not_applied(&self.modules.edge_tunnel));
        if let Ok(listen) = self.modules.edge_gateway.listen_addresses() {
            out.extend(listen.ipv6_notices());
        }
        out
    }

    /// Every invalid value, in file order, by the agent's rules for the keys they share.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut v = Collector::default();
        check_kube_api(&self.kube_api_config, self.from_flags, &mut v);
        v.checked("commonConfig.adminAddr", &self.common_config.admin_addr);
        if let Some(dir) = &self.manifests {
            v.dir("--manifests", dir);
        }
        let gateway = &self.modules.edge_gateway;
        if let Err(errors) = gateway.listen_addresses() {
            v.errors.extend(errors);
        }
        check_consistent_hash(
            "modules.edgeGateway.loadBalancer.consistentHash",
            &gateway.load_balancer.consistent_hash,
            &mut v,
        );
        check_tunnel(&self.modules.edge_tunnel, &mut v);
        let port = &self.modules.edge_tunnel.listen_port;
        if port.get() == Some(Port(u16::MAX)) {
            let allowed =
                "1..=65534: the gateway's tunnel listens on listenPort + 1, as EdgeMesh's";
            v.errors.push(ConfigError::invalid(
                "modules.edgeTunnel.listenPort",
                port.raw(),
                allowed,
            ));
        }
        v.finish()
    }

    /// Which API the gateway watches, by the agent's rules ([`crate::AgentConfig::discovery`]).
    pub fn discovery(&self, env: &Env) -> Discovery {
        discover(&self.kube_api_config, self.manifests.as_deref(), env)
    }

    /// `commonConfig.adminAddr` (or `--admin-addr`), else the default.
    pub fn admin_addr(&self) -> SocketAddr {
        let addr = &self.common_config.admin_addr;
        addr.get().unwrap_or(DEFAULT_GATEWAY_ADMIN_ADDR)
    }

    /// The port the gateway's tunnel listens on: EdgeMesh runs it as a client-only peer on
    /// `listenPort + 1`, clear of the agent's tunnel on the same host network. `None` when
    /// `listenPort` is invalid or 65535 (which [`GatewayConfig::validate`] reports).
    pub fn tunnel_listen_port(&self) -> Option<u16> {
        let port = self.modules.edge_tunnel.listen_port.get()?;
        port.0.checked_add(1)
    }
}
