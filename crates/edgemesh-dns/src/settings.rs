//! Node-local DNS as the agent runs it: EdgeMesh's `modules.edgeDNS` resolved into
//! [`DnsSettings`], then the bridge device with EdgeMesh's address and the server on it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use edgemesh_config::AgentConfig;
use edgemesh_host::ensure_bridge_device;
use edgemesh_model::SnapshotCell;
use edgemesh_telemetry::Liveness;

use crate::config::{
    ClientPolicy, DEFAULT_BRIDGE_IP, DEFAULT_LISTEN_PORT, DnsConfig, RESOLV_CONF, upstreams_of_node,
};
use crate::error::DnsError;
use crate::metrics::DnsMetrics;
use crate::server::DnsServer;

/// `modules.edgeDNS` and the bridge device of `commonConfig`.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub bridge_name: String,
    pub bridge_ip: IpAddr,
    pub server: DnsConfig,
}

impl DnsSettings {
    /// `None` when `modules.edgeDNS.enable` is false. Values were validated by the config crate.
    /// `node_name` is this node: its Node's addresses and pod ranges may ask.
    pub fn from_config(config: &AgentConfig, node_name: &str) -> Option<Self> {
        let dns = &config.modules.edge_dns;
        if !dns.enable {
            return None;
        }
        let (bridge_name, bridge_ip) = bridge_device(config);
        let port = dns.listen_port.get().map_or(DEFAULT_LISTEN_PORT, |p| p.0);
        let seconds = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(0));
        let server = DnsConfig {
            listen: vec![SocketAddr::new(bridge_ip, port)],
            cluster_domain: dns.cluster_domain.clone(),
            ttl: seconds(dns.ttl),
            upstreams: dns
                .cache_dns
                .upstream_servers
                .iter()
                .filter_map(|s| upstream(s))
                .collect(),
            cache_ttl: seconds(dns.cache_dns.cache_ttl),
            cache_dns_mode: dns.cache_dns.enable,
            clients: ClientPolicy {
                node: Some(node_name.to_owned()),
                allowed: dns
                    .allowed_clients
                    .iter()
                    .filter_map(|c| c.parse().ok())
                    .collect(),
            },
            ..DnsConfig::default()
        };
        Some(Self {
            bridge_name,
            bridge_ip,
            server,
        })
    }
}

/// `commonConfig.bridgeDeviceName` and `bridgeDeviceIP`: the device DNS (and SOCKS5) serve on,
/// and the address that shows it is ours.
pub fn bridge_device(config: &AgentConfig) -> (String, IpAddr) {
    let common = &config.common_config;
    let ip = (common.bridge_device_ip.get()).map_or(DEFAULT_BRIDGE_IP, IpAddr::V4);
    (common.bridge_device_name.clone(), ip)
}

/// `IP` or `IP:port` (validated by the config crate).
fn upstream(text: &str) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// Creates the bridge device, binds the server and serves in the background.
pub async fn start(
    settings: DnsSettings,
    cell: Arc<SnapshotCell>,
    liveness: &Liveness,
) -> Result<Arc<DnsMetrics>, DnsError> {
    let DnsSettings {
        bridge_name,
        bridge_ip,
        mut server,
    } = settings;
    ensure_bridge_device(&bridge_name, bridge_ip, 32)
        .await
        .map_err(|error| DnsError::BridgeDevice {
            name: bridge_name.clone(),
            ip: bridge_ip,
            error: Box::new(error),
        })?;
    if server.upstreams.is_empty() {
        server.upstreams = upstreams_of_node(RESOLV_CONF.as_ref(), &[bridge_ip]);
    }
    let metrics = Arc::new(DnsMetrics::default());
    let dns = DnsServer::bind(&server, cell, Arc::clone(&metrics))
        .await
        .map_err(|error| DnsError::Listen {
            listen: server.listen.clone(),
            error: Box::new(error),
        })?;
    tracing::info!(listen = ?dns.local_addrs(), upstreams = ?server.upstreams, domain = %server.cluster_domain, "node-local DNS serving");
    liveness.spawn("dns server", async move {
        if let Err(e) = dns.run(std::future::pending()).await {
            tracing::error!(error = %e, "DNS server stopped");
        }
    });
    Ok(metrics)
}
