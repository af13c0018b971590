//! The playground's pods: which program runs on which node, on which port, with which labels.
//!
//! Pods use the node's network (like EdgeMesh's hostPort pods): a pod is a process in the
//! node's namespace listening on `0.0.0.0:port`, and its endpoint address is the node's IP.

use std::net::Ipv4Addr;

use crate::plan::{self, NodeSpec};

/// A built-in pod program (`edgemesh playground pod <program>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Program {
    /// HTTP: answers every request with the pod's name.
    Hostname,
    /// TCP: echoes bytes until the client half-closes.
    TcpEcho,
    /// UDP: echoes each datagram.
    UdpEcho,
    /// WebSocket: echoes each message prefixed with the pod's name.
    WsEcho,
}

impl Program {
    /// The CLI name of the program.
    pub fn as_str(self) -> &'static str {
        match self {
            Program::Hostname => "hostname",
            Program::TcpEcho => "tcp-echo",
            Program::UdpEcho => "udp-echo",
            Program::WsEcho => "ws-echo",
        }
    }
}

/// One pod: a process on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodSpec {
    pub name: &'static str,
    /// The `app` label Services select on.
    pub app: &'static str,
    pub node: &'static str,
    pub program: Program,
    pub port: u16,
}

impl PodSpec {
    /// The node the pod runs on (every entry of [`PODS`] names a node of the plan).
    pub fn node_spec(&self) -> Option<&'static NodeSpec> {
        plan::node(self.node)
    }

    /// The pod's address: its node's IP (host network).
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.node_spec().map(|n| n.ip)
    }
}

const fn pod(
    name: &'static str,
    app: &'static str,
    node: &'static str,
    program: Program,
    port: u16,
) -> PodSpec {
    PodSpec {
        name,
        app,
        node,
        program,
        port,
    }
}

/// Every pod the playground starts. Services in `examples/playground` select them by `app`.
///
/// - `hostname-edge`: three replicas spread over both LANs (EdgeMesh's hostname example).
/// - `web`: two replicas in LAN A behind the load-balancing variants, so their distribution can
///   be checked from LAN A directly and from LAN B through the tunnel.
/// - `tcp-echo` and `udp-echo` on edge-a1, `websocket-echo` on edge-b1: every LAN serves
///   something and is a client of something across the NAT.
pub const PODS: [PodSpec; 8] = [
    pod(
        "hostname-edge-a1",
        "hostname-edge",
        "edge-a1",
        Program::Hostname,
        9376,
    ),
    pod(
        "hostname-edge-a2",
        "hostname-edge",
        "edge-a2",
        Program::Hostname,
        9376,
    ),
    pod(
        "hostname-edge-b1",
        "hostname-edge",
        "edge-b1",
        Program::Hostname,
        9376,
    ),
    pod("web-a1", "web", "edge-a1", Program::Hostname, 8080),
    pod("web-a2", "web", "edge-a2", Program::Hostname, 8080),
    pod("tcp-echo-a1", "tcp-echo", "edge-a1", Program::TcpEcho, 2701),
    pod("udp-echo-a1", "udp-echo", "edge-a1", Program::UdpEcho, 2702),
    pod(
        "websocket-echo-b1",
        "websocket-echo",
        "edge-b1",
        Program::WsEcho,
        12348,
    ),
];

/// The pods carrying `app`.
pub fn by_app(app: &str) -> impl Iterator<Item = &'static PodSpec> + '_ {
    PODS.iter().filter(move |p| p.app == app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pod_is_on_a_node_and_no_two_pods_share_a_node_port() {
        let mut taken = std::collections::HashSet::new();
        for p in &PODS {
            assert!(
                p.node_spec().is_some(),
                "{} is on unknown node {}",
                p.name,
                p.node
            );
            let key = (p.node, p.port, p.program == Program::UdpEcho);
            assert!(
                taken.insert(key),
                "{} clashes on {}:{}",
                p.name,
                p.node,
                p.port
            );
        }
    }

    #[test]
    fn hostname_replicas_span_both_lans() {
        let sites: std::collections::HashSet<_> = by_app("hostname-edge")
            .filter_map(|p| p.node_spec().map(|n| n.site))
            .collect();
        assert_eq!(sites.len(), 2);
        assert_eq!(by_app("hostname-edge").count(), 3);
    }
}
