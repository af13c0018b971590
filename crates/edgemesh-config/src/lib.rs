//! EdgeMesh's own agent config file, read with EdgeMesh's defaults.
//!
//! `edgemesh agent --config PATH` accepts the file EdgeMesh's ConfigMap `edgemesh-agent-cfg`
//! mounts (`apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1`, `kind: EdgeMeshAgent`), so
//! an operator can swap the image and keep the ConfigMap. The flow in the binary is:
//!
//! ```text
//! load(path) | edge_defaults()  →  apply(&overrides)  →  validate()  →  discovery(&env)
//!   (warnings: unknown keys)       (flags win)            (before any      (which sources
//!                                                         host change)      to start)
//! ```
//!
//! [`prepare`] runs all of it (plus the node name) in one call; [`SourceArgs`] are the flags
//! that name the file and override it, shared by `edgemesh agent` and `edgemesh doctor`.
//!
//! `edgemesh gateway` reads EdgeMesh's gateway file (`kind: EdgeMeshGateway`) the same way:
//! [`GatewayConfig`], [`prepare_gateway`]. Each refuses the other's file by its kind.
//!
//! Nothing here touches the host except reading the config file and, in `validate`, checking
//! that the files and directories it names exist. The full key reference, with what edgemesh
//! acts on and what it only accepts, is `docs/configuration.md`.
#![forbid(unsafe_code)]

mod args;
mod checked;
mod common;
mod discovery;
mod env;
mod error;
mod from_flags;
mod gateway;
mod kube_api;
mod load;
mod modules;
mod overrides;
mod prepare;
mod validate;

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

pub use args::SourceArgs;
pub use checked::{Checked, ConfigValue, Port, ProxyBackend, PskMode, Transport};
pub use common::{
    CommonConfig, DEFAULT_ADMIN_ADDR, DEFAULT_BRIDGE_DEVICE_IP, DEFAULT_BRIDGE_DEVICE_NAME,
    PprofConfig,
};
pub use discovery::{ApiEndpoint, Discovery};
pub use env::{Env, RunningMode};
pub use error::{ConfigError, ConfigErrors, Warning};
pub use gateway::{
    DEFAULT_GATEWAY_ADMIN_ADDR, DEFAULT_GATEWAY_CONFIG_PATH, EdgeGatewayModule,
    GatewayCommonConfig, GatewayConfig, GatewayModules, ListenAddresses, PreparedGateway,
    prepare_gateway, prepare_gateway_with,
};
pub use kube_api::{
    CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF, DEFAULT_META_SERVER, KubeApiConfig, MetaServer,
    MetaServerSecurity,
};
pub use load::Loaded;
pub use modules::*;
pub use overrides::{NodeName, NodeNameSource, Overrides, resolve_node_name, system_hostname};
pub use prepare::{Prepared, prepare, prepare_with};

/// The `apiVersion` of EdgeMesh's agent config.
pub const API_VERSION: &str = "agent.edgemesh.config.kubeedge.io/v1alpha1";
/// The `kind` of EdgeMesh's agent config.
pub const KIND: &str = "EdgeMeshAgent";
/// The `apiVersion` of EdgeMesh's gateway config.
pub const GATEWAY_API_VERSION: &str = "gateway.edgemesh.config.kubeedge.io/v1alpha1";
/// The `kind` of EdgeMesh's gateway config.
pub const GATEWAY_KIND: &str = "EdgeMeshGateway";

/// The agent config: EdgeMesh's `EdgeMeshAgent` v1alpha1 plus a few edgemesh extension keys.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentConfig {
    pub api_version: String,
    pub kind: String,
    #[serde(rename = "kubeAPIConfig", deserialize_with = "nullable")]
    pub kube_api_config: KubeApiConfig,
    #[serde(deserialize_with = "nullable")]
    pub common_config: CommonConfig,
    #[serde(deserialize_with = "nullable")]
    pub modules: AgentModules,
    /// Directory of YAML manifests to serve from (flag `--manifests` only; not a file key).
    #[serde(skip)]
    pub manifests: Option<PathBuf>,
    /// Which keys a flag set, so errors name the flag the operator typed.
    #[serde(skip)]
    pub(crate) from_flags: from_flags::FromFlags,
}

impl Default for AgentConfig {
    /// EdgeMesh's defaults on an edge node (what `load` starts from in [`RunningMode::Edge`]).
    fn default() -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            kube_api_config: KubeApiConfig::default(),
            common_config: CommonConfig::default(),
            modules: AgentModules::default(),
            manifests: None,
            from_flags: from_flags::FromFlags::default(),
        }
    }
}

impl AgentConfig {
    /// EdgeMesh's defaults for a config file (`NewDefaultEdgeMeshAgentConfig`): every module
    /// disabled except edgeDNS on edge nodes; JSON to the API on edge nodes.
    pub fn defaults(mode: RunningMode) -> Self {
        let mut config = Self::default();
        if mode == RunningMode::Cloud {
            config.modules.edge_dns.enable = false;
            config.kube_api_config.content_type = CONTENT_TYPE_PROTOBUF.to_owned();
        }
        config
    }

    /// What runs without `--config`: an EdgeMesh edge node as its shipped manifests set it up
    /// (edgeProxy and edgeDNS on). The tunnel is on only once relay nodes are configured,
    /// which without a file they are not.
    pub fn edge_defaults() -> Self {
        let mut config = Self::defaults(RunningMode::Edge);
        config.modules.edge_proxy.enable = true;
        let tunnel = &mut config.modules.edge_tunnel;
        tunnel.enable = !tunnel.relay_nodes.is_empty();
        config
    }
}

/// A present-but-empty section (`edgeDNS:` with every child commented out) means "defaults",
/// where Go's YAML library would leave a nil pointer behind.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}
