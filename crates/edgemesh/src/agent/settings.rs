//! What the agent runs with: the config file, the defaults and the flags, resolved and validated.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use edgemesh_model::{ServiceFilterMode, SourceId};

use crate::cli::AgentArgs;

/// How the agent reaches a Kubernetes API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTarget {
    Kubeconfig(PathBuf),
    /// `kubeAPIConfig.master`, KubeEdge's metaServer or the edge hub.
    Url(String),
    InCluster,
}

impl fmt::Display for ApiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiTarget::Kubeconfig(path) => write!(f, "kubeconfig {}", path.display()),
            ApiTarget::Url(url) => f.write_str(url),
            ApiTarget::InCluster => f.write_str("in-cluster service account"),
        }
    }
}

/// The resolved settings of one agent run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_name: String,
    pub filter_mode: ServiceFilterMode,
    pub admin_addr: SocketAddr,
    pub api: Option<ApiTarget>,
    pub manifests: Option<PathBuf>,
    /// Non-fatal findings (unknown keys, fallbacks) to log once logging is up.
    pub warnings: Vec<String>,
}

impl Settings {
    /// The sources that must all complete a first sync before the agent is ready.
    pub fn sources(&self) -> Vec<SourceId> {
        let mut sources = Vec::new();
        if self.api.is_some() {
            sources.push(SourceId::KubeApi);
        }
        if self.manifests.is_some() {
            sources.push(SourceId::Manifests);
        }
        sources
    }

    /// Loads the config file (or the edge-node defaults), applies the flags and validates.
    /// The error names the key, the value and what is allowed.
    pub fn load(args: &AgentArgs) -> Result<Self, String> {
        let api = match (&args.kubeconfig, &args.master) {
            (Some(path), _) => Some(ApiTarget::Kubeconfig(path.clone())),
            (None, Some(url)) => Some(ApiTarget::Url(url.clone())),
            (None, None) if args.manifests.is_some() => None,
            (None, None) => Some(ApiTarget::InCluster),
        };
        Ok(Self {
            node_name: args.node_name.clone().unwrap_or_else(|| "localhost".into()),
            filter_mode: ServiceFilterMode::default(),
            admin_addr: args.admin_addr.unwrap_or(([127, 0, 0, 1], 10557).into()),
            api,
            manifests: args.manifests.clone(),
            warnings: Vec::new(),
        })
    }
}
