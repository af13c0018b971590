//! Command-line flags, which win over the file, and the node name.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::checked::Checked;
use crate::error::{ConfigError, Warning};
use crate::{AgentConfig, GatewayConfig};

/// The flags of `edgemesh agent` that override the file; `None` leaves the file's value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--node-name` (resolved by [`resolve_node_name`], not a file key).
    pub node_name: Option<String>,
    /// `--kubeconfig` → `kubeAPIConfig.kubeConfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--master` → `kubeAPIConfig.master`.
    pub master: Option<String>,
    /// `--manifests` (flag only).
    pub manifests_dir: Option<PathBuf>,
    /// `--admin-addr` → `commonConfig.adminAddr`.
    pub admin_addr: Option<SocketAddr>,
}

/// `apply` for every component's config: the flags they share (the API keys, the manifests
/// directory and the admin address) land on fields of the same names in each.
macro_rules! lay_shared_flags {
    ($($config:ty),+) => {$(
        impl $config {
            /// Lays the flags over the file. Validate afterwards: flag values are checked like
            /// file values.
            pub fn apply(&mut self, flags: &Overrides) {
                if let Some(path) = &flags.kubeconfig {
                    self.kube_api_config.kube_config.clone_from(path);
                    self.from_flags.kubeconfig = true;
                }
                if let Some(master) = &flags.master {
                    self.kube_api_config.master.clone_from(master);
                    self.from_flags.master = true;
                }
                if let Some(dir) = &flags.manifests_dir {
                    self.manifests = Some(dir.clone());
                }
                if let Some(addr) = flags.admin_addr {
                    self.common_config.admin_addr = Checked::new(addr);
                }
            }
        }
    )+};
}

lay_shared_flags!(AgentConfig, GatewayConfig);

/// Where the node name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeNameSource {
    Flag,
    /// `NODE_NAME`, as EdgeMesh's DaemonSet sets it from `spec.nodeName`.
    Env,
    Hostname,
}

/// The name of the node the agent runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeName {
    pub name: String,
    pub source: NodeNameSource,
    /// Set when the name is a guess the operator should confirm.
    pub warning: Option<Warning>,
}

/// `--node-name`, else `NODE_NAME` (`env_value`), else the host name lowercased as the kubelet
/// does (with a warning: if it differs from the Node object's name, the agent will not find
/// its own endpoints). Empty values count as unset. `hostname` is a parameter for tests.
pub fn resolve_node_name(
    flag: Option<&str>,
    env_value: Option<&str>,
    hostname: impl FnOnce() -> std::io::Result<String>,
) -> Result<NodeName, ConfigError> {
    let given = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if let Some(name) = given(flag) {
        return Ok(NodeName {
            name,
            source: NodeNameSource::Flag,
            warning: None,
        });
    }
    if let Some(name) = given(env_value) {
        return Ok(NodeName {
            name,
            source: NodeNameSource::Env,
            warning: None,
        });
    }
    let host = hostname().map_err(|e| ConfigError::NodeName {
        reason: format!("cannot read the host name: {e}"),
    })?;
    let name = host.trim().to_lowercase();
    if name.is_empty() {
        let reason = "the host name is empty".to_owned();
        return Err(ConfigError::NodeName { reason });
    }
    let message = format!(
        "neither --node-name nor NODE_NAME is set; using the host name '{name}', which must match the Node's name"
    );
    Ok(NodeName {
        name,
        source: NodeNameSource::Hostname,
        warning: Some(Warning::new("nodeName", message)),
    })
}

/// This machine's host name.
pub fn system_hostname() -> std::io::Result<String> {
    let name = nix::unistd::gethostname().map_err(std::io::Error::from)?;
    name.into_string()
        .map_err(|_| std::io::Error::other("the host name is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> impl FnOnce() -> std::io::Result<String> + '_ {
        move || Ok(name.to_owned())
    }

    #[test]
    fn flag_then_env_then_hostname() {
        use NodeNameSource::*;
        let cases = [
            (Some("from-flag"), Some("from-env"), "from-flag", Flag),
            (None, Some("from-env"), "from-env", Env),
            (Some(""), Some("from-env"), "from-env", Env),
            (Some("  "), None, "host-1", Hostname),
            (None, Some(""), "host-1", Hostname),
            (None, None, "host-1", Hostname),
        ];
        for (flag, env, want, source) in cases {
            let got = resolve_node_name(flag, env, host("Host-1\n")).unwrap();
            assert_eq!(
                (got.name.as_str(), got.source),
                (want, source),
                "{flag:?} {env:?}"
            );
            assert_eq!(got.warning.is_some(), source == Hostname);
        }
    }

    #[test]
    fn hostname_failures_are_errors_that_say_what_to_set() {
        let failing = || Err(std::io::Error::other("boom"));
        let err = resolve_node_name(None, None, failing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot determine the node name: cannot read the host name: boom (set --node-name or NODE_NAME)"
        );
        let err = resolve_node_name(None, None, host(" ")).unwrap_err();
        assert!(err.to_string().contains("the host name is empty"));
    }

    #[test]
    fn flags_win_over_the_file_and_absent_flags_keep_it() {
        let mut config = AgentConfig::default();
        config.kube_api_config.master = "http://file:8080".into();
        config.kube_api_config.kube_config = "/file/kubeconfig".into();
        config.apply(&Overrides::default());
        assert_eq!(config.kube_api_config.master, "http://file:8080");

        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        config.apply(&Overrides {
            kubeconfig: Some("/flag/kubeconfig".into()),
            master: Some("https://flag:6443".into()),
            manifests_dir: Some("/flag/manifests".into()),
            admin_addr: Some(addr),
            node_name: Some("ignored-here".into()),
        });
        assert_eq!(config.kube_api_config.master, "https://flag:6443");
        assert_eq!(
            config.kube_api_config.kube_config,
            PathBuf::from("/flag/kubeconfig")
        );
        assert_eq!(config.manifests, Some(PathBuf::from("/flag/manifests")));
        assert_eq!(config.common_config.admin_addr.get(), Some(addr));
    }
}
