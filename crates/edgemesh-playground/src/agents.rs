//! How the playground starts an agent on a node. The agents run the tunnel unless `up
//! --no-tunnel` (which shows what breaks without it: `check` then reports the cross-LAN checks
//! as SKIP (needs tunnel)). With the tunnel every agent has its own state directory (its node
//! key) and all share one PSK file.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use crate::plan::{NODES, NodeSpec, Site};

/// The agent's admin endpoint inside each node's namespace (the agent's default).
pub const ADMIN_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10557));
/// The SOCKS5 proxy the agents serve with the tunnel (EdgeMesh's `socks5Proxy` address).
pub const SOCKS5_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(169, 254, 96, 16), 10800));
/// The gateway's admin endpoint on the cloud node (`edgemesh gateway`'s default, beside the
/// agent's).
pub const GATEWAY_ADMIN_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10558));
/// The port of `examples/playground/gateway.yaml`'s Gateway (EdgeMesh's example).
pub const GATEWAY_PORT: u16 = 23333;
/// The node-local DNS the agents serve (EdgeMesh's bridge address).
pub const DNS_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(169, 254, 96, 16), 53));

/// The agent config file every node uses (EdgeMesh's format): proxy on nftables (UDP needs
/// TPROXY), node-local DNS, and with `tunnel` (the PSK file) the edgeTunnel module with the
/// cloud node as relay, over QUIC next to TCP when `quic`.
pub fn config_yaml(tunnel: Option<&Path>, quic: bool) -> String {
    let mut yaml = String::from(
        "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\n\
         kind: EdgeMeshAgent\n\
         modules:\n  edgeDNS:\n    enable: true\n  edgeProxy:\n    enable: true\n    backend: nftables\n",
    );
    if tunnel.is_some() {
        // Reach a node by name through the tunnel, as in EdgeMesh's SSH guide.
        yaml.push_str("    socks5Proxy:\n      enable: true\n");
    }
    if let Some(psk) = tunnel {
        yaml.push_str(&tunnel_yaml(psk, quic));
    }
    yaml
}

/// The `edgeTunnel` module every process of the playground shares: the PSK file, the cloud
/// node as relay, and QUIC next to TCP when `quic` (a gateway on TCP alone could not dial the
/// QUIC addresses the agents advertise).
fn tunnel_yaml(psk: &Path, quic: bool) -> String {
    let relay = relay_node();
    let mut yaml = format!(
        "  edgeTunnel:\n    enable: true\n    psk:\n      enable: true\n      path: {}\n    relayNodes:\n      - nodeName: {}\n        advertiseAddress:\n          - {}\n",
        psk.display(),
        relay.name,
        relay.ip
    );
    if quic {
        yaml.push_str("    transport: quic\n");
    }
    yaml
}

/// The gateway's config (EdgeMesh's `EdgeMeshGateway`): listening on the cloud's public
/// address only, with the same tunnel as the agents (QUIC when `quic`) when `tunnel` (the PSK
/// file) is given.
pub fn gateway_config_yaml(tunnel: Option<&Path>, quic: bool) -> String {
    let cloud = relay_node();
    let mut yaml = format!(
        "apiVersion: gateway.edgemesh.config.kubeedge.io/v1alpha1\n\
         kind: EdgeMeshGateway\n\
         modules:\n  edgeGateway:\n    enable: true\n    includeIP: {}\n",
        cloud.ip
    );
    match tunnel {
        Some(psk) => yaml.push_str(&tunnel_yaml(psk, quic)),
        None => yaml.push_str("  edgeTunnel:\n    enable: false\n"),
    }
    yaml
}

/// The gateway's command line on the cloud node (its own state directory: its tunnel key).
pub fn gateway_args(config: &Path, manifests: &Path, state: &Path) -> Vec<String> {
    let cloud = relay_node();
    vec![
        "gateway".into(),
        "--config-file".into(),
        config.display().to_string(),
        "--manifests".into(),
        manifests.display().to_string(),
        "--state-dir".into(),
        state.join("gateway").display().to_string(),
        "--node-name".into(),
        cloud.name.into(),
        "--admin-addr".into(),
        GATEWAY_ADMIN_ADDR.to_string(),
    ]
}

/// The relay of the tunnel: the cloud node, the only one every LAN can reach.
pub fn relay_node() -> &'static NodeSpec {
    NODES
        .iter()
        .find(|n| n.site == Site::Cloud)
        .unwrap_or(&NODES[0])
}

/// The agent's command line (after the binary); `state` is the directory of all nodes' state.
pub fn args(node: &NodeSpec, config: &Path, manifests: &Path, state: &Path) -> Vec<String> {
    vec![
        "agent".into(),
        "--state-dir".into(),
        state.join(node.name).display().to_string(),
        "--config".into(),
        config.display().to_string(),
        "--manifests".into(),
        manifests.display().to_string(),
        "--node-name".into(),
        node.name.into(),
        "--admin-addr".into(),
        ADMIN_ADDR.to_string(),
    ]
}

/// `/etc/netns/<ns>/resolv.conf`: `ip netns exec` bind-mounts it over /etc/resolv.conf, so
/// commands on a node resolve `svc.ns` through the node's agent, as a pod would.
pub fn resolv_conf() -> String {
    format!(
        "# written by edgemesh playground; removed by `edgemesh playground down`\n\
         nameserver {}\nsearch svc.cluster.local cluster.local\noptions ndots:5 timeout:2 attempts:2\n",
        DNS_ADDR.ip()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunnel_setting_only_adds_the_tunnel_module() {
        let off = config_yaml(None, true);
        let on = config_yaml(Some(Path::new("/run/p/psk")), false);
        let quic = config_yaml(Some(Path::new("/run/p/psk")), true);
        assert!(!on.contains("transport") && !off.contains("transport"));
        assert!(quic.contains("\n    transport: quic\n"));
        assert!(!off.contains("edgeTunnel"));
        assert!(on.contains("socks5Proxy:\n      enable: true") && !off.contains("socks5"));
        assert!(on.contains("nodeName: cloud") && on.contains("203.0.113.10"));
        assert!(on.contains("path: /run/p/psk"));
    }

    #[test]
    fn the_gateway_runs_the_agents_tunnel_transport() {
        let psk = Some(Path::new("/run/p/psk"));
        let quic = gateway_config_yaml(psk, true);
        assert!(quic.contains("\n    transport: quic\n"), "{quic}");
        assert!(!gateway_config_yaml(psk, false).contains("transport"));
        assert!(gateway_config_yaml(None, true).contains("edgeTunnel:\n    enable: false"));
    }

    #[test]
    fn args_name_the_node_and_the_manifests() {
        let args = args(
            &NODES[1],
            Path::new("/c.yaml"),
            Path::new("/m"),
            Path::new("/s"),
        );
        let text = args.join(" ");
        assert_eq!(
            text,
            "agent --state-dir /s/edge-a1 --config /c.yaml --manifests /m --node-name edge-a1 \
             --admin-addr 127.0.0.1:10557"
        );
    }
}
