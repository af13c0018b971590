//! The checks, as data: what a user would try by hand from a node in each LAN (and the cloud),
//! and whether each one needs the tunnel. Pure: derived from the plan, the pods and the examples.

use std::collections::HashSet;

use crate::manifests::ServiceInfo;
use crate::plan::{NodeSpec, Site};
use crate::pods::PodSpec;

/// What a check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The node's agent answers /readyz.
    AgentReady,
    /// The node-local DNS resolves the service to its ClusterIP.
    Dns,
    /// An HTTP request is answered by one of the service's pods.
    HttpReplica,
    /// Repeated HTTP requests reach every pod of the service.
    HttpAllReplicas,
    TcpEcho,
    UdpEcho,
    WebSocket,
    /// DestinationRule ROUND_ROBIN: consecutive requests alternate over the pods.
    RoundRobin,
    /// DestinationRule RANDOM: every pod answers some of many requests.
    Random,
    /// DestinationRule consistentHash on `x-user`: one user, one pod; users spread.
    ConsistentHash,
    /// sessionAffinity ClientIP: every request of one client lands on one pod.
    SessionAffinity,
    /// A service with the filter label: its ClusterIP is not intercepted.
    NotProxied,
    /// SOCKS5 (`169.254.96.16:10800`) to a node of another LAN by its name, then HTTP to the
    /// service's pod there: EdgeMesh's `ssh -o ProxyCommand="nc --proxy-type socks5 ..."`.
    Socks5,
    /// The ingress gateway on the cloud node (`examples/playground/gateway.yaml`), asked at the
    /// cloud's public address as a client outside the cluster would: every replica answers,
    /// those in the LANs through the gateway's tunnel.
    Gateway,
}

/// How the client addresses the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    ClusterIp,
    Dns,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Check {
    pub kind: Kind,
    pub from: &'static NodeSpec,
    pub via: Via,
    pub service: Option<ServiceInfo>,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::AgentReady => "agent ready",
            Kind::Dns => "DNS name → ClusterIP",
            Kind::HttpReplica => "HTTP answered by a replica",
            Kind::HttpAllReplicas => "HTTP reaches all replicas",
            Kind::TcpEcho => "TCP echo",
            Kind::UdpEcho => "UDP echo",
            Kind::WebSocket => "WebSocket echo",
            Kind::RoundRobin => "LB round robin alternates",
            Kind::Random => "LB random uses every pod",
            Kind::ConsistentHash => "LB consistent hash sticks",
            Kind::SessionAffinity => "ClientIP affinity sticks",
            Kind::NotProxied => "filtered service not proxied",
            Kind::Socks5 => "SOCKS5 to a node by name",
            Kind::Gateway => "gateway reaches all replicas",
        }
    }
}

impl Check {
    /// "HTTP answered by a replica".
    pub fn name(&self) -> String {
        self.kind.label().to_owned()
    }

    /// "edge-a2 → hostname-lb-svc.edgemesh-test:12345".
    pub fn path(&self) -> String {
        let Some(svc) = &self.service else {
            return format!("{} → its agent", self.from.name);
        };
        let port = svc.ports.first().map_or(0, |p| p.port);
        let target = match (self.kind, self.via) {
            (Kind::Dns, _) => format!("{} → {}", svc.dns_short(), svc.cluster_ip),
            (Kind::Gateway, _) => {
                format!("gateway {}:{}", self.from.ip, crate::agents::GATEWAY_PORT)
            }
            (Kind::Socks5, _) => match remote_pod(svc, self.from) {
                Some(pod) => format!("socks5 → {}:{}", pod.node, pod.port),
                None => "socks5 → (no pod in another site)".into(),
            },
            (_, Via::ClusterIp) => format!("{}:{port}", svc.cluster_ip),
            (_, Via::Dns) => format!("{}:{port}", svc.dns_short()),
        };
        format!("{} ({}) → {target}", self.from.name, self.from.site.label())
    }

    /// Whether the check can only pass with the tunnel (a pod it must reach is in another LAN
    /// or behind another NAT than the client).
    pub fn needs_tunnel(&self) -> bool {
        let sites: HashSet<Site> = self
            .service
            .iter()
            .flat_map(ServiceInfo::pods)
            .filter_map(|p| p.node_spec().map(|n| n.site))
            .collect();
        needs_tunnel(self.kind, self.from.site, &sites)
    }
}

/// A pod of `svc` outside the client's site: what the SOCKS5 check reaches by node name.
pub fn remote_pod(svc: &ServiceInfo, from: &NodeSpec) -> Option<&'static PodSpec> {
    svc.pods()
        .into_iter()
        .find(|p| p.node_spec().is_some_and(|n| n.site != from.site))
}

/// The tunnel rule: a check that must reach every pod needs the tunnel as soon as one pod is
/// elsewhere; "some replica answers" needs it only when none is in the client's site.
pub fn needs_tunnel(kind: Kind, client: Site, pod_sites: &HashSet<Site>) -> bool {
    match kind {
        Kind::AgentReady | Kind::Dns | Kind::NotProxied => false,
        Kind::HttpReplica => !pod_sites.contains(&client),
        _ => pod_sites.iter().any(|s| *s != client),
    }
}

/// Every check, in table order. `services` are the examples' Services.
pub fn catalog(services: &[ServiceInfo]) -> Vec<Check> {
    use Kind::*;
    use Via::{ClusterIp as Ip, Dns as Name};
    let node = |name: &str| crate::plan::node(name);
    let svc = |name: &str| services.iter().find(|s| s.name == name).cloned();
    let rows: [(Kind, &str, Via, &str); 35] = [
        (AgentReady, "cloud", Ip, ""),
        (AgentReady, "edge-a1", Ip, ""),
        (AgentReady, "edge-a2", Ip, ""),
        (AgentReady, "edge-b1", Ip, ""),
        (Dns, "edge-a2", Name, "hostname-lb-svc"),
        (Dns, "edge-b1", Name, "hostname-lb-svc"),
        (Dns, "cloud", Name, "hostname-lb-svc"),
        (HttpReplica, "edge-a2", Ip, "hostname-lb-svc"),
        (HttpReplica, "edge-a2", Name, "hostname-lb-svc"),
        (HttpReplica, "edge-b1", Ip, "hostname-lb-svc"),
        (HttpReplica, "edge-b1", Name, "hostname-lb-svc"),
        (HttpReplica, "cloud", Ip, "hostname-lb-svc"),
        (HttpAllReplicas, "edge-a2", Ip, "hostname-lb-svc"),
        (HttpAllReplicas, "edge-b1", Ip, "hostname-lb-svc"),
        (TcpEcho, "edge-a2", Ip, "tcp-echo-service"),
        (TcpEcho, "edge-a2", Name, "tcp-echo-service"),
        (TcpEcho, "edge-b1", Ip, "tcp-echo-service"),
        (UdpEcho, "edge-a2", Ip, "udp-echo-service"),
        (UdpEcho, "edge-a2", Name, "udp-echo-service"),
        (UdpEcho, "edge-b1", Ip, "udp-echo-service"),
        (WebSocket, "edge-b1", Ip, "ws-svc"),
        (WebSocket, "edge-b1", Name, "ws-svc"),
        (WebSocket, "edge-a2", Ip, "ws-svc"),
        (RoundRobin, "edge-a2", Ip, "web-rr-svc"),
        (RoundRobin, "edge-b1", Ip, "web-rr-svc"),
        (Random, "edge-a2", Ip, "web-random-svc"),
        (Random, "edge-b1", Ip, "web-random-svc"),
        (ConsistentHash, "edge-a2", Name, "web-hash-svc"),
        (ConsistentHash, "edge-b1", Ip, "web-hash-svc"),
        (SessionAffinity, "edge-a2", Ip, "web-affinity-svc"),
        (SessionAffinity, "edge-b1", Ip, "web-affinity-svc"),
        (NotProxied, "edge-a2", Ip, "web-filtered-svc"),
        (NotProxied, "edge-b1", Ip, "web-filtered-svc"),
        (Socks5, "edge-a2", Name, "hostname-lb-svc"),
        (Gateway, "cloud", Ip, "hostname-lb-svc"),
    ];
    rows.iter()
        .filter_map(|&(kind, from, via, service)| {
            Some(Check {
                kind,
                from: node(from)?,
                via,
                service: if service.is_empty() {
                    None
                } else {
                    Some(svc(service)?)
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunnel_rule() {
        use Site::*;
        let set = |s: &[Site]| s.iter().copied().collect::<HashSet<_>>();
        let cases = [
            (Kind::AgentReady, Cloud, set(&[LanA]), false),
            (Kind::Dns, LanA, set(&[LanB]), false),
            (Kind::NotProxied, LanB, set(&[LanA]), false),
            (Kind::HttpReplica, LanA, set(&[LanA, LanB]), false),
            (Kind::HttpReplica, Cloud, set(&[LanA, LanB]), true),
            (Kind::HttpAllReplicas, LanA, set(&[LanA, LanB]), true),
            (Kind::HttpAllReplicas, LanA, set(&[LanA]), false),
            (Kind::TcpEcho, LanB, set(&[LanA]), true),
            (Kind::WebSocket, LanB, set(&[LanB]), false),
            (Kind::RoundRobin, LanA, set(&[LanA]), false),
        ];
        for (kind, client, pods, want) in cases {
            assert_eq!(
                needs_tunnel(kind, client, &pods),
                want,
                "{kind:?} from {client:?}"
            );
        }
    }

    #[test]
    fn every_row_resolves_and_each_lan_has_passing_and_tunnel_checks() {
        let services = crate::manifests::services().unwrap();
        let checks = catalog(&services);
        assert_eq!(checks.len(), 35, "a row names an unknown node or service");
        for site in [Site::LanA, Site::LanB] {
            let from_site: Vec<_> = checks.iter().filter(|c| c.from.site == site).collect();
            assert!(from_site.iter().any(|c| c.needs_tunnel()), "{site:?}");
            assert!(
                from_site
                    .iter()
                    .any(|c| !c.needs_tunnel() && c.service.is_some()),
                "{site:?}"
            );
        }
        let tunnel_free_kinds: HashSet<_> = checks
            .iter()
            .filter(|c| !c.needs_tunnel())
            .map(|c| c.kind)
            .collect();
        // Every kind runs without the tunnel somewhere, except reaching all three replicas
        // (directly or through the gateway).
        assert_eq!(tunnel_free_kinds.len(), 11);
        assert!(!tunnel_free_kinds.contains(&Kind::HttpAllReplicas));
    }

    #[test]
    fn paths_name_the_client_and_the_target() {
        let services = crate::manifests::services().unwrap();
        let checks = catalog(&services);
        let paths: Vec<String> = checks.iter().map(Check::path).collect();
        assert!(
            paths.contains(&"edge-a2 (LAN A) → hostname-lb-svc.edgemesh-test:12345".to_owned())
        );
        assert!(paths.contains(&"edge-b1 (LAN B) → 10.96.100.14:12348".to_owned()));
        assert!(paths.contains(&"cloud → its agent".to_owned()));
    }
}
