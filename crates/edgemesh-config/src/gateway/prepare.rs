//! [`prepare_gateway`]: the gateway's file, flags, validation, node name and discovery in one
//! call, as [`crate::prepare`] does for the agent.

use std::net::SocketAddr;
use std::path::Path;

use crate::error::{ConfigError, ConfigErrors, Warning};
use crate::overrides::{NodeName, Overrides, system_hostname};
use crate::prepare::{node_name, one};
use crate::{Discovery, Env, GatewayConfig, ListenAddresses, Loaded, RunningMode};

/// Everything the gateway needs to start, validated.
#[derive(Clone, Debug)]
pub struct PreparedGateway {
    pub config: GatewayConfig,
    /// `modules.edgeGateway.{nic,includeIP,excludeIP}`, parsed.
    pub listen: ListenAddresses,
    pub node: NodeName,
    /// The port the gateway's tunnel listens on: `modules.edgeTunnel.listenPort + 1`, as in
    /// EdgeMesh, whose gateway is a client-only tunnel peer beside the agent's.
    pub tunnel_port: u16,
    pub discovery: Discovery,
    /// To log once logging is up: unknown keys, guesses, overruled settings.
    pub warnings: Vec<Warning>,
}

impl PreparedGateway {
    /// `modules.edgeGateway.enable`. EdgeMesh's default is false, and EdgeMesh then runs no
    /// gateway (at most a tunnel client that serves nothing).
    pub fn enabled(&self) -> bool {
        self.config.modules.edge_gateway.enable
    }

    /// [`ConfigError::GatewayDisabled`] when the gateway is not enabled: the binary refuses to
    /// start rather than run idle.
    pub fn require_enabled(&self) -> Result<(), ConfigError> {
        if self.enabled() {
            Ok(())
        } else {
            Err(ConfigError::GatewayDisabled)
        }
    }

    /// `commonConfig.adminAddr` (or `--admin-addr`), else [`crate::DEFAULT_GATEWAY_ADMIN_ADDR`].
    pub fn admin_addr(&self) -> SocketAddr {
        self.config.admin_addr()
    }

    /// The name EdgeMesh's gateway uses in the tunnel and its load balancer: the node's name
    /// with `-gateway`, so it does not collide with the agent on the same node.
    pub fn tunnel_node_name(&self) -> String {
        format!("{}-gateway", self.node.name)
    }

    /// The warnings as lines to log or print.
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings.iter().map(ToString::to_string).collect()
    }
}

/// Loads `config_path` (EdgeMesh's defaults for the detected mode; the file is required, as in
/// EdgeMesh, whose default is [`crate::DEFAULT_GATEWAY_CONFIG_PATH`]), applies the flags,
/// validates, parses the listen addresses and resolves the node name and discovery.
pub fn prepare_gateway(
    config_path: &Path,
    overrides: &Overrides,
    env: &Env,
) -> Result<PreparedGateway, ConfigErrors> {
    prepare_gateway_with(config_path, overrides, env, system_hostname)
}

/// [`prepare_gateway`] with the host name lookup injected (for tests).
pub fn prepare_gateway_with(
    config_path: &Path,
    overrides: &Overrides,
    env: &Env,
    hostname: impl FnOnce() -> std::io::Result<String>,
) -> Result<PreparedGateway, ConfigErrors> {
    let Loaded {
        mut config,
        mut warnings,
    } = GatewayConfig::load(config_path, RunningMode::detect(env)).map_err(one)?;
    config.apply(overrides);
    config.validate()?;
    let listen = config.modules.edge_gateway.listen_addresses()?;
    let tunnel_port = config.tunnel_listen_port().ok_or_else(|| {
        let port = config.modules.edge_tunnel.listen_port.raw();
        one(ConfigError::invalid(
            "modules.edgeTunnel.listenPort",
            port,
            "1..=65534",
        ))
    })?;
    let node = node_name(overrides, env, hostname, &mut warnings)?;
    let discovery = config.discovery(env);
    warnings.extend(discovery.notes.iter().cloned());
    Ok(PreparedGateway {
        config,
        listen,
        node,
        tunnel_port,
        discovery,
        warnings,
    })
}
