//! The flags that say which config and which sources the agent runs with. `edgemesh agent`
//! and `edgemesh doctor` both flatten [`SourceArgs`], so a flag means the same in both.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::Overrides;

/// The config file and the flags that override it (help texts are the agent's; the doctor
/// rewords them for its own `--help`).
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// EdgeMesh agent config file (apiVersion agent.edgemesh.config.kubeedge.io/v1alpha1,
    /// kind EdgeMeshAgent); `--config-file` is EdgeMesh's name for it. Without it, the defaults
    /// of an EdgeMesh edge node apply, except when started as `edgemesh-agent` (EdgeMesh's image
    /// entry point), where it is EdgeMesh's /etc/edgemesh/config/edgemesh-agent.yaml.
    #[arg(long, short = 'c', visible_alias = "config-file", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Name of the node this agent runs on (falls back to the host name).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// kubeconfig file used to reach the Kubernetes API (overrides kubeAPIConfig.kubeConfig).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// URL of the Kubernetes API server, e.g. http://127.0.0.1:10550 for KubeEdge's metaServer
    /// or the edge hub (overrides kubeAPIConfig.master).
    #[arg(long, value_name = "URL")]
    pub master: Option<String>,

    /// Directory of YAML manifests (Services, EndpointSlices, Endpoints, Nodes, DestinationRules),
    /// watched live. Alone, it runs the agent fully offline with no API server.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,

    /// Address of the admin endpoint (/healthz, /readyz, /metrics, /debug/snapshot).
    /// Port 0 picks a free port; the chosen address is logged.
    #[arg(long, value_name = "ADDR")]
    pub admin_addr: Option<SocketAddr>,
}

impl SourceArgs {
    /// The flags that win over the file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            node_name: self.node_name.clone(),
            kubeconfig: self.kubeconfig.clone(),
            master: self.master.clone(),
            manifests_dir: self.manifests.clone(),
            admin_addr: self.admin_addr,
        }
    }
}
