//! Which sources of services the agent starts: an API server, a manifests directory, or both.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::Warning;
use crate::{AgentConfig, KubeApiConfig};

/// How the agent reaches a Kubernetes API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiEndpoint {
    /// `kubeAPIConfig.kubeConfig` or `--kubeconfig` (EdgeMesh's "ManualMode").
    Kubeconfig(PathBuf),
    /// `kubeAPIConfig.master` or `--master`, without credentials (EdgeMesh's "ManualMode").
    Master(String),
    /// The pod's service account (EdgeMesh's "CloudMode").
    InCluster,
    /// KubeEdge's metaServer on the edge node (EdgeMesh's "EdgeMode").
    MetaServer(String),
}

impl fmt::Display for ApiEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiEndpoint::Kubeconfig(path) => write!(f, "kubeconfig {}", path.display()),
            ApiEndpoint::Master(url) => write!(f, "API server {url}"),
            ApiEndpoint::InCluster => f.write_str("in-cluster service account"),
            ApiEndpoint::MetaServer(url) => write!(f, "KubeEdge metaServer {url}"),
        }
    }
}

/// The sources to start. Both may be set: their objects are merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub api: Option<ApiEndpoint>,
    pub manifests: Option<PathBuf>,
    /// Settings that were overruled by these rules (for the log).
    pub notes: Vec<Warning>,
}

impl AgentConfig {
    /// Applies the rules, first match wins:
    ///
    /// 1. a kubeconfig (file key or flag) → [`ApiEndpoint::Kubeconfig`];
    /// 2. else a master URL → [`ApiEndpoint::Master`];
    /// 3. else, with `--manifests`, no API at all (offline, standalone);
    /// 4. else, with `KUBERNETES_SERVICE_HOST` set → [`ApiEndpoint::InCluster`];
    /// 5. else → [`ApiEndpoint::MetaServer`] at `kubeAPIConfig.metaServer.server`, with
    ///    `http://` turned into `https://` when `security.requireAuthorization` is set (as
    ///    EdgeMesh does).
    ///
    /// The manifests directory is used whenever it is given.
    pub fn discovery(&self, env: &Env) -> Discovery {
        discover(&self.kube_api_config, self.manifests.as_deref(), env)
    }

    /// The metaServer URL the agent dials (EdgeMesh switches the scheme to https when the
    /// metaServer requires authorization).
    pub fn meta_server_url(&self) -> String {
        self.kube_api_config.meta_server_url()
    }
}

impl KubeApiConfig {
    /// `metaServer.server`, with `http://` turned into `https://` when the metaServer requires
    /// authorization, as EdgeMesh does.
    pub fn meta_server_url(&self) -> String {
        let meta = &self.meta_server;
        match meta.server.strip_prefix("http://") {
            Some(rest) if meta.security.require_authorization => format!("https://{rest}"),
            _ => meta.server.clone(),
        }
    }
}

/// The rules of [`AgentConfig::discovery`], for any component's `kubeAPIConfig`.
pub(crate) fn discover(
    api_config: &KubeApiConfig,
    manifests: Option<&Path>,
    env: &Env,
) -> Discovery {
    let mut notes = Vec::new();
    let api = if let Some(path) = api_config.kubeconfig() {
        if let Some(master) = api_config.master() {
            let message = format!(
                "'{master}' not used: the kubeconfig's server is used (kubeAPIConfig.kubeConfig is set)"
            );
            notes.push(Warning::new("kubeAPIConfig.master", message));
        }
        Some(ApiEndpoint::Kubeconfig(path.to_owned()))
    } else if let Some(master) = api_config.master() {
        Some(ApiEndpoint::Master(master.to_owned()))
    } else if manifests.is_some() {
        None
    } else if env.kubernetes_service_host.is_some() {
        Some(ApiEndpoint::InCluster)
    } else {
        Some(ApiEndpoint::MetaServer(api_config.meta_server_url()))
    };
    Discovery {
        api,
        manifests: manifests.map(Path::to_path_buf),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        kubeconfig: &'static str,
        master: &'static str,
        manifests: Option<&'static str>,
        service_host: Option<&'static str>,
        want: Option<ApiEndpoint>,
    }

    const fn case(
        kubeconfig: &'static str,
        master: &'static str,
        manifests: Option<&'static str>,
        service_host: Option<&'static str>,
        want: Option<ApiEndpoint>,
    ) -> Case {
        Case {
            kubeconfig,
            master,
            manifests,
            service_host,
            want,
        }
    }

    #[test]
    fn rules_table() {
        use ApiEndpoint::*;
        let kc = || Some(Kubeconfig("/kc".into()));
        let meta = || Some(MetaServer("http://127.0.0.1:10550".into()));
        let cases = [
            case("/kc", "", None, None, kc()),
            case("/kc", "https://m:6443", None, Some("10.96.0.1"), kc()),
            case("/kc", "", Some("/m"), None, kc()),
            case(
                "",
                "https://m:6443",
                None,
                Some("10.96.0.1"),
                Some(Master("https://m:6443".into())),
            ),
            case(
                "",
                "https://m:6443",
                Some("/m"),
                None,
                Some(Master("https://m:6443".into())),
            ),
            case("", "", Some("/m"), Some("10.96.0.1"), None),
            case("", "", Some("/m"), None, None),
            case("", "", None, Some("10.96.0.1"), Some(InCluster)),
            case("", "", None, None, meta()),
        ];
        for (i, c) in cases.into_iter().enumerate() {
            let mut config = AgentConfig::edge_defaults();
            config.kube_api_config.kube_config = c.kubeconfig.into();
            config.kube_api_config.master = c.master.into();
            config.manifests = c.manifests.map(PathBuf::from);
            let env = Env {
                kubernetes_service_host: c.service_host.map(str::to_owned),
                node_name: None,
            };
            let got = config.discovery(&env);
            assert_eq!(got.api, c.want, "case {i}");
            assert_eq!(got.manifests, config.manifests, "case {i}");
        }
    }

    #[test]
    fn master_beside_a_kubeconfig_is_noted() {
        let mut config = AgentConfig::edge_defaults();
        config.kube_api_config.kube_config = "/kc".into();
        config.kube_api_config.master = "https://m:6443".into();
        let notes = config.discovery(&Env::default()).notes;
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].key, "kubeAPIConfig.master");
    }

    #[test]
    fn meta_server_becomes_https_when_authorization_is_required() {
        let mut config = AgentConfig::edge_defaults();
        config.kube_api_config.meta_server.server = "http://127.0.0.1:10550".into();
        config
            .kube_api_config
            .meta_server
            .security
            .require_authorization = true;
        let want = Some(ApiEndpoint::MetaServer("https://127.0.0.1:10550".into()));
        assert_eq!(config.discovery(&Env::default()).api, want);
    }
}
