//! The whole resolution in one call, for the binary: file or defaults, flags, validation, node
//! name, discovery. Any error here means "exit with status 2 before touching the host".

use std::net::SocketAddr;
use std::path::Path;

use crate::error::{ConfigError, ConfigErrors, Warning};
use crate::overrides::{NodeName, Overrides, resolve_node_name, system_hostname};
use crate::{AgentConfig, DEFAULT_ADMIN_ADDR, Discovery, Env, Loaded, RunningMode};

/// Everything the agent needs to start, validated.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub config: AgentConfig,
    pub node: NodeName,
    pub discovery: Discovery,
    /// To log once logging is up: unknown keys, guesses, overruled settings.
    pub warnings: Vec<Warning>,
}

impl Prepared {
    /// `commonConfig.adminAddr` (or `--admin-addr`), else the default.
    pub fn admin_addr(&self) -> SocketAddr {
        let common = &self.config.common_config;
        common.admin_addr.get().unwrap_or(DEFAULT_ADMIN_ADDR)
    }

    /// The warnings as lines to log or print.
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings.iter().map(ToString::to_string).collect()
    }
}

/// Loads `config_path` (EdgeMesh's defaults for the detected mode) or, without one, the
/// edge-node defaults; applies the flags; validates; resolves the node name and discovery.
pub fn prepare(
    config_path: Option<&Path>,
    overrides: &Overrides,
    env: &Env,
) -> Result<Prepared, ConfigErrors> {
    prepare_with(config_path, overrides, env, system_hostname)
}

/// [`prepare`] with the host name lookup injected (for tests).
pub fn prepare_with(
    config_path: Option<&Path>,
    overrides: &Overrides,
    env: &Env,
    hostname: impl FnOnce() -> std::io::Result<String>,
) -> Result<Prepared, ConfigErrors> {
    let Loaded {
        mut config,
        mut warnings,
    } = match config_path {
        Some(path) => AgentConfig::load(path, RunningMode::detect(env)).map_err(one)?,
        None => Loaded {
            config: AgentConfig::edge_defaults(),
            warnings: Vec::new(),
        },
    };
    config.apply(overrides);
    config.validate()?;
    let node = node_name(overrides, env, hostname, &mut warnings)?;
    let discovery = config.discovery(env);
    warnings.extend(discovery.notes.iter().cloned());
    Ok(Prepared {
        config,
        node,
        discovery,
        warnings,
    })
}

/// The node name from `--node-name`, `NODE_NAME` or the host name; a guess is warned about.
pub(crate) fn node_name(
    overrides: &Overrides,
    env: &Env,
    hostname: impl FnOnce() -> std::io::Result<String>,
    warnings: &mut Vec<Warning>,
) -> Result<NodeName, ConfigErrors> {
    let node = resolve_node_name(
        overrides.node_name.as_deref(),
        env.node_name.as_deref(),
        hostname,
    )
    .map_err(one)?;
    warnings.extend(node.warning.clone());
    Ok(node)
}

pub(crate) fn one(error: ConfigError) -> ConfigErrors {
    ConfigErrors(vec![error])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApiEndpoint, NodeNameSource};

    fn host() -> std::io::Result<String> {
        Ok("edge-1".to_owned())
    }

    #[test]
    fn without_a_file_an_edge_node_reaches_the_meta_server() {
        let p = prepare_with(None, &Overrides::default(), &Env::default(), host).unwrap();
        assert_eq!(p.node.name, "edge-1");
        assert_eq!(p.node.source, NodeNameSource::Hostname);
        assert_eq!(p.warnings.len(), 1, "the host name guess is reported");
        let meta = ApiEndpoint::MetaServer(crate::DEFAULT_META_SERVER.to_owned());
        assert_eq!(p.discovery.api, Some(meta));
        assert!(p.config.modules.edge_proxy.enable);
    }

    #[test]
    fn errors_of_any_stage_come_back_as_config_errors() {
        let bad_flag = Overrides {
            kubeconfig: Some("/nope".into()),
            ..Overrides::default()
        };
        let env = Env {
            node_name: Some("n".into()),
            ..Env::default()
        };
        let err = prepare_with(None, &bad_flag, &env, host).unwrap_err();
        assert_eq!(err.to_string(), "--kubeconfig: file '/nope' does not exist");

        let missing = Path::new("/nonexistent/edgemesh-agent.yaml");
        let err = prepare_with(Some(missing), &Overrides::default(), &env, host).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read config file"),
            "{err}"
        );
    }
}
