//! What the agent on this node is configured to run, read with the agent's own loader: the
//! config file (or the edge-node defaults), the flags that override it, validation.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use edgemesh_config::{
    AgentConfig, ConfigErrors, DEFAULT_BRIDGE_DEVICE_IP, DEFAULT_PROXY_LISTEN_PORT, Env, Overrides,
    Prepared, prepare,
};
use edgemesh_kube::target::ApiTarget;

/// EdgeMesh's agent config file, the default of its image (and of `edgemesh-agent`).
pub const EDGEMESH_AGENT_CONFIG: &str = "/etc/edgemesh/config/edgemesh-agent.yaml";

/// The hub's admin address by default (`edgemesh hub --admin-addr`).
pub const DEFAULT_HUB_ADMIN_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 10267);

/// The parts of the configuration the checks look at.
#[derive(Clone, Debug)]
pub struct Plan {
    /// "FILE" or "the edge-node defaults (no config file)".
    pub source: String,
    pub node_name: String,
    pub admin_addr: SocketAddr,
    /// `modules.edgeProxy.listenPort` when the proxy is on.
    pub proxy_port: Option<u16>,
    pub dns: Option<DnsPlan>,
    /// How the agent reaches the API, with which credentials (the agent's own resolution).
    pub api: Option<ApiTarget>,
    pub tunnel: Option<TunnelPlan>,
    /// The hub's admin address, when a hub is in use (flag, or `edgeHubAddress` configured).
    pub hub_admin: Option<SocketAddr>,
    /// Config warnings (unknown keys, guesses).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct DnsPlan {
    pub addr: SocketAddr,
    pub cluster_domain: String,
}

#[derive(Clone, Debug)]
pub struct TunnelPlan {
    pub listen_port: u16,
    /// `Some` when `psk.enable`.
    pub psk_path: Option<PathBuf>,
    pub relays: Vec<Relay>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relay {
    pub node_name: String,
    pub addrs: Vec<SocketAddr>,
}

impl TunnelPlan {
    /// Whether this node is one of the relays.
    pub fn is_relay(&self, node_name: &str) -> bool {
        self.relays.iter().any(|r| r.node_name == node_name)
    }

    /// The relays other than this node.
    pub fn other_relays<'a>(&'a self, node_name: &'a str) -> impl Iterator<Item = &'a Relay> {
        self.relays.iter().filter(move |r| r.node_name != node_name)
    }
}

/// The flags `edgemesh doctor` shares with `edgemesh agent`.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub config: Option<PathBuf>,
    pub overrides: Overrides,
    pub hub_admin: Option<SocketAddr>,
}

/// Loads the config as the agent does. Without `--config`, EdgeMesh's file is read when it
/// exists, else the edge-node defaults apply (as for `edgemesh agent` without a file).
pub fn load(inputs: &Inputs, env: &Env) -> Result<Plan, ConfigErrors> {
    let default_file = Path::new(EDGEMESH_AGENT_CONFIG);
    let path = match &inputs.config {
        Some(path) => Some(path.as_path()),
        None if default_file.exists() => Some(default_file),
        None => None,
    };
    let prepared = prepare(path, &inputs.overrides, env)?;
    let source = path.map_or_else(
        || "the edge-node defaults (no config file)".to_owned(),
        |p| p.display().to_string(),
    );
    Ok(from_prepared(prepared, source, inputs.hub_admin))
}

/// The plan of a loaded, validated config (pure).
pub fn from_prepared(prepared: Prepared, source: String, hub_admin: Option<SocketAddr>) -> Plan {
    let config = &prepared.config;
    let proxy = &config.modules.edge_proxy;
    let hub_configured = proxy
        .edge_hub_address
        .as_ref()
        .is_some_and(|a| a.is_valid());
    Plan {
        source,
        admin_addr: prepared.admin_addr(),
        proxy_port: proxy.enable.then(|| {
            proxy
                .listen_port
                .get()
                .map_or(DEFAULT_PROXY_LISTEN_PORT, |p| p.0)
        }),
        dns: dns_plan(config),
        api: ApiTarget::of(&prepared),
        tunnel: tunnel_plan(config),
        hub_admin: hub_admin.or(hub_configured.then_some(DEFAULT_HUB_ADMIN_ADDR)),
        node_name: prepared.node.name.clone(),
        warnings: prepared.warning_lines(),
    }
}

fn dns_plan(config: &AgentConfig) -> Option<DnsPlan> {
    let dns = &config.modules.edge_dns;
    if !dns.enable {
        return None;
    }
    let ip = config
        .common_config
        .bridge_device_ip
        .get()
        .unwrap_or(DEFAULT_BRIDGE_DEVICE_IP);
    let port = dns.listen_port.get().map_or(53, |p| p.0);
    Some(DnsPlan {
        addr: SocketAddr::from((ip, port)),
        cluster_domain: dns.cluster_domain.clone(),
    })
}

fn tunnel_plan(config: &AgentConfig) -> Option<TunnelPlan> {
    let tunnel = &config.modules.edge_tunnel;
    if !tunnel.enable {
        return None;
    }
    let listen_port = tunnel.listen_port.get().map_or(20006, |p| p.0);
    let relays = tunnel
        .relay_nodes
        .iter()
        .map(|r| Relay {
            node_name: r.node_name.clone(),
            addrs: r
                .advertise_address
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, listen_port))
                .collect(),
        })
        .collect();
    Some(TunnelPlan {
        listen_port,
        psk_path: tunnel.psk.enable.then(|| PathBuf::from(&tunnel.psk.path)),
        relays,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgemesh_config::prepare_with;

    fn plan_of(yaml: &str, hub_admin: Option<SocketAddr>) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, yaml).unwrap();
        let env = Env {
            node_name: Some("edge-1".into()),
            ..Env::default()
        };
        let host = || Ok("edge-1".to_owned());
        let prepared = prepare_with(Some(&path), &Overrides::default(), &env, host).unwrap();
        from_prepared(prepared, "f".into(), hub_admin)
    }

    const HEAD: &str =
        "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n";

    #[test]
    fn modules_and_addresses_come_from_the_file() {
        let yaml = format!(
            "{HEAD}modules:\n  edgeProxy:\n    enable: true\n    listenPort: 30001\n    \
             edgeHubAddress: 169.254.2.1:10268\n  edgeDNS:\n    enable: true\n    \
             clusterDomain: edge.example\n  edgeTunnel:\n    enable: true\n    listenPort: 20007\n    \
             relayNodes:\n    - nodeName: r1\n      advertiseAddress: [192.0.2.1, 192.0.2.2]\n    \
             psk:\n      enable: true\n      path: /etc/edgemesh/psk\n"
        );
        let plan = plan_of(&yaml, None);
        assert_eq!(plan.proxy_port, Some(30001));
        let dns = plan.dns.unwrap();
        assert_eq!(dns.addr, "169.254.96.16:53".parse().unwrap());
        assert_eq!(dns.cluster_domain, "edge.example");
        let tunnel = plan.tunnel.unwrap();
        assert_eq!(tunnel.psk_path, Some(PathBuf::from("/etc/edgemesh/psk")));
        assert_eq!(
            tunnel.relays[0].addrs,
            vec![
                "192.0.2.1:20007".parse().unwrap(),
                "192.0.2.2:20007".parse().unwrap()
            ]
        );
        assert_eq!(plan.hub_admin, Some(DEFAULT_HUB_ADMIN_ADDR));
        assert!(matches!(plan.api.unwrap(), ApiTarget::MetaServer { .. }));
    }

    #[test]
    fn disabled_modules_have_no_plan_and_a_hub_flag_wins() {
        let yaml = format!(
            "{HEAD}modules:\n  edgeProxy:\n    enable: false\n  edgeDNS:\n    enable: false\n"
        );
        let hub: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let plan = plan_of(&yaml, Some(hub));
        assert_eq!(plan.proxy_port, None);
        assert!(plan.dns.is_none());
        assert!(plan.tunnel.is_none());
        assert_eq!(plan.hub_admin, Some(hub));
    }
}
