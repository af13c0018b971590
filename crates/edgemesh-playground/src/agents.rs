//! How the playground starts an agent on a node. This is the ONE place that decides whether the
//! agents run the tunnel: today [`TUNNEL_DEFAULT`] is false because `edgemesh-tunnel` is not
//! wired into the agent yet, so `check` reports the cross-LAN checks as SKIP (needs tunnel).
//! Once it is, set [`TUNNEL_DEFAULT`] to true (or pass `up --tunnel`) and adjust
//! [`config_yaml`] to the agent's tunnel settings; every check then must PASS.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;

use crate::plan::{NODES, NodeSpec, Site};

/// Whether `up` starts the agents with the tunnel when not told otherwise.
pub const TUNNEL_DEFAULT: bool = false;
/// The agent's admin endpoint inside each node's namespace (the agent's default).
pub const ADMIN_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10557));
/// The node-local DNS the agents serve (EdgeMesh's bridge address).
pub const DNS_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(169, 254, 96, 16), 53));

/// The agent config file every node uses (EdgeMesh's format): proxy on nftables (UDP needs
/// TPROXY), node-local DNS, and with `tunnel` the edgeTunnel module with the cloud node as relay.
pub fn config_yaml(tunnel: bool) -> String {
    let mut yaml = String::from(
        "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\n\
         kind: EdgeMeshAgent\n\
         modules:\n  edgeDNS:\n    enable: true\n  edgeProxy:\n    enable: true\n    backend: nftables\n",
    );
    if tunnel {
        let relay = relay_node();
        yaml.push_str(&format!(
            "  edgeTunnel:\n    enable: true\n    relayNodes:\n      - nodeName: {}\n        advertiseAddress:\n          - {}\n",
            relay.name, relay.ip
        ));
    }
    yaml
}

/// The relay of the tunnel: the cloud node, the only one every LAN can reach.
pub fn relay_node() -> &'static NodeSpec {
    NODES
        .iter()
        .find(|n| n.site == Site::Cloud)
        .unwrap_or(&NODES[0])
}

/// The agent's command line (after the binary).
pub fn args(node: &NodeSpec, config: &Path, manifests: &Path) -> Vec<String> {
    vec![
        "agent".into(),
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
        let off = config_yaml(false);
        let on = config_yaml(true);
        assert!(!off.contains("edgeTunnel"));
        assert!(on.starts_with(&off));
        assert!(on.contains("nodeName: cloud") && on.contains("203.0.113.10"));
    }

    #[test]
    fn args_name_the_node_and_the_manifests() {
        let args = args(&NODES[1], Path::new("/c.yaml"), Path::new("/m"));
        let text = args.join(" ");
        assert_eq!(
            text,
            "agent --config /c.yaml --manifests /m --node-name edge-a1 --admin-addr 127.0.0.1:10557"
        );
    }
}
