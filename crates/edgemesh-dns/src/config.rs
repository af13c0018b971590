//! What the DNS server is told: addresses, the cluster domain, TTLs, upstreams and cache bounds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use edgemesh_host::{HostSockets, SocketFactory};
use edgemesh_model::Cidr;

/// EdgeMesh's `commonConfig.bridgeDeviceName` default.
pub const DEFAULT_BRIDGE_DEVICE: &str = "edgemesh0";
/// EdgeMesh's `commonConfig.bridgeDeviceIP` default (a /32 on the bridge device).
pub const DEFAULT_BRIDGE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 96, 16));
/// EdgeMesh's `modules.edgeDNS.listenPort` default.
pub const DEFAULT_LISTEN_PORT: u16 = 53;

/// Configuration of one DNS server.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Exact addresses to listen on (UDP and TCP); wildcards are rejected.
    pub listen: Vec<SocketAddr>,
    /// Suffix of cluster names, e.g. `cluster.local`.
    pub cluster_domain: String,
    /// TTL of answers built from the Snapshot.
    pub ttl: Duration,
    /// Where every other name is forwarded, in order of preference.
    pub upstreams: Vec<SocketAddr>,
    /// Upper bound on how long an upstream answer is cached (EdgeMesh `cacheTTL`).
    pub cache_ttl: Duration,
    /// How long after expiry a cached answer may still be served when no upstream answers.
    pub serve_stale_for: Duration,
    /// TTL put on stale answers (RFC 8767 suggests 30 s).
    pub stale_answer_ttl: Duration,
    /// Bound on the whole upstream exchange of one query (all upstreams, UDP and TCP).
    pub upstream_timeout: Duration,
    /// EdgeMesh `cacheDNS` mode: cluster names the Snapshot does not know are forwarded to the
    /// upstreams (the cluster DNS) instead of answered NXDOMAIN.
    pub cache_dns_mode: bool,
    /// Maximum number of cached upstream answers.
    pub cache_capacity: usize,
    /// How long an idle TCP client connection is kept.
    pub tcp_idle_timeout: Duration,
    /// Upstream exchanges in flight at once; past that, queries get the stale cache or SERVFAIL
    /// at once instead of piling up behind a dead upstream.
    pub max_upstream_inflight: usize,
    /// Who may ask (anyone else gets REFUSED).
    pub clients: ClientPolicy,
    /// Where the listening and the upstream sockets come from (plain host sockets by default).
    pub sockets: Arc<dyn SocketFactory>,
}

/// Who the node-local DNS answers: the node itself and its pods, not its LAN neighbours (a host
/// that routes 169.254.96.16 via the node would otherwise have an open resolver, and an
/// amplifier, in every edge node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientPolicy {
    /// This node's name: its Node object's addresses and `podCIDRs` are allowed.
    pub node: Option<String>,
    /// Networks allowed besides (edgemesh's `modules.edgeDNS.allowedClients`).
    pub allowed: Vec<Cidr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::new(DEFAULT_BRIDGE_IP, DEFAULT_LISTEN_PORT)],
            cluster_domain: "cluster.local".into(),
            ttl: Duration::from_secs(30),
            upstreams: Vec::new(),
            cache_ttl: Duration::from_secs(30),
            serve_stale_for: Duration::from_secs(24 * 3600),
            stale_answer_ttl: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(2),
            cache_dns_mode: false,
            cache_capacity: 10_000,
            tcp_idle_timeout: Duration::from_secs(5),
            max_upstream_inflight: 1024,
            clients: ClientPolicy::default(),
            sockets: Arc::new(HostSockets::default()),
        }
    }
}

/// The node's resolver configuration: where upstreams come from when none are configured.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The node's own resolvers from the resolv.conf at `path`, except `skip` (our own addresses).
/// An unreadable file gives none; with none, only cluster names resolve (logged).
pub fn upstreams_of_node(path: &std::path::Path, skip: &[IpAddr]) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let upstreams = upstreams_from_resolv_conf(&text, skip);
    if upstreams.is_empty() {
        tracing::warn!(
            path = %path.display(),
            "no upstream DNS server in the resolv.conf; only cluster names will resolve"
        );
    }
    upstreams
}

/// The `nameserver` entries of a resolv.conf, on port 53, without the addresses in `skip`
/// (our own listen addresses: forwarding to ourselves would loop).
pub fn upstreams_from_resolv_conf(text: &str, skip: &[IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // A link-local IPv6 server carries a zone (`fe80::1%eth0`) we cannot use here.
            words.next()?.parse::<IpAddr>().ok()
        })
        .filter(|ip| !skip.contains(ip))
        .map(|ip| SocketAddr::new(ip, DEFAULT_LISTEN_PORT))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_skips_our_address_comments_and_junk() {
        let text = "# generated\nsearch default.svc.cluster.local\nnameserver 169.254.96.16\n\
                    nameserver 10.96.0.10\n  nameserver\t2001:db8::53 \nnameserver fe80::1%eth0\n\
                    ;nameserver 192.0.2.1\nnameserver not-an-ip\noptions ndots:5\n";
        assert_eq!(
            upstreams_from_resolv_conf(text, &[DEFAULT_BRIDGE_IP]),
            vec![
                "10.96.0.10:53".parse().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn resolv_conf_with_only_ourselves_gives_nothing() {
        assert!(
            upstreams_from_resolv_conf("nameserver 169.254.96.16", &[DEFAULT_BRIDGE_IP]).is_empty()
        );
        assert!(upstreams_from_resolv_conf("", &[]).is_empty());
    }
}
