//! `modules.edgeProxy` of EdgeMesh's agent config as the proxy reads it (the proxier's part is
//! `edgemesh_netfilter::settings`).

use std::time::Duration;

use edgemesh_config::{DEFAULT_PROXY_LISTEN_PORT, EdgeProxy, LoadBalancer};
use edgemesh_lb::ConsistentHashConfig;

use crate::config::ProxyConfig;

/// `modules.edgeProxy`: the transparent proxy.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// One port for TCP (REDIRECT) and UDP (TPROXY).
    pub port: u16,
    pub consistent_hash: ConsistentHashConfig,
    /// `tcpIdleTimeout` (s; 0: `None`, never).
    pub tcp_idle_timeout: Option<Duration>,
    /// `udpIdleTimeout` (s).
    pub udp_idle_timeout: Duration,
    /// `maxUdpSessions`.
    pub max_udp_sessions: usize,
}

impl ProxySettings {
    pub fn from_config(proxy: &EdgeProxy) -> Self {
        Self {
            port: proxy
                .listen_port
                .get()
                .map_or(DEFAULT_PROXY_LISTEN_PORT, |p| p.0),
            consistent_hash: consistent_hash_of(&proxy.load_balancer),
            tcp_idle_timeout: Some(seconds(proxy.tcp_idle_timeout)).filter(|d| !d.is_zero()),
            udp_idle_timeout: seconds(proxy.udp_idle_timeout),
            max_udp_sessions: usize::try_from(proxy.max_udp_sessions).unwrap_or(usize::MAX),
        }
    }

    /// `config` with the limits of the file.
    pub fn apply(&self, config: ProxyConfig) -> ProxyConfig {
        ProxyConfig {
            tcp_idle_timeout: self.tcp_idle_timeout,
            udp_idle_timeout: self.udp_idle_timeout,
            max_udp_sessions: self.max_udp_sessions,
            ..config
        }
    }
}

/// validate() has rejected negative values; a negative one would mean 0.
fn seconds(value: i64) -> Duration {
    Duration::from_secs(u64::try_from(value).unwrap_or(0))
}

/// The ring of a `loadBalancer` section (the agent's `modules.edgeProxy`, the gateway's
/// `modules.edgeGateway`).
pub fn consistent_hash_of(balancer: &LoadBalancer) -> ConsistentHashConfig {
    let hash = &balancer.consistent_hash;
    // validate() has checked every value, so the fallbacks are never used.
    let count = |v: i64| usize::try_from(v).unwrap_or(1);
    ConsistentHashConfig {
        partition_count: count(hash.partition_count),
        replication_factor: count(hash.replication_factor),
        load: hash.load,
    }
}

#[cfg(test)]
mod tests {
    use edgemesh_config::{AgentConfig, RunningMode};

    use super::*;

    fn settings(proxy_yaml: &str) -> ProxySettings {
        let yaml = format!("modules:\n  edgeProxy:\n    enable: true\n{proxy_yaml}");
        let loaded = AgentConfig::from_yaml(&yaml, "test.yaml", RunningMode::Edge)
            .unwrap_or_else(|e| panic!("{e}"));
        ProxySettings::from_config(&loaded.config.modules.edge_proxy)
    }

    #[test]
    fn port_and_ring_come_from_the_config_or_edgemesh_defaults() {
        assert_eq!(settings("").port, DEFAULT_PROXY_LISTEN_PORT);
        let yaml = "    listenPort: 40100\n    loadBalancer:\n      consistentHash:\n        partitionCount: 7\n        replicationFactor: 3\n        load: 1.5\n";
        let got = settings(yaml);
        assert_eq!(got.port, 40100);
        let hash = got.consistent_hash;
        assert_eq!((hash.partition_count, hash.replication_factor), (7, 3));
        assert!((hash.load - 1.5).abs() < f64::EPSILON);
    }

    #[test]
    fn limits_default_to_the_proxy_defaults_and_come_from_the_config() {
        let defaults = ProxyConfig::default();
        let got = settings("").apply(ProxyConfig::default());
        assert_eq!(got.tcp_idle_timeout, defaults.tcp_idle_timeout);
        assert_eq!(got.udp_idle_timeout, defaults.udp_idle_timeout);
        assert_eq!(got.max_udp_sessions, defaults.max_udp_sessions);
        assert_eq!(got.tcp_idle_timeout, Some(Duration::from_secs(900)));

        let yaml = "    tcpIdleTimeout: 300\n    udpIdleTimeout: 30\n    maxUdpSessions: 1000\n";
        let got = settings(yaml).apply(ProxyConfig::default());
        assert_eq!(got.tcp_idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(got.udp_idle_timeout, Duration::from_secs(30));
        assert_eq!(got.max_udp_sessions, 1000);
        let never = settings("    tcpIdleTimeout: 0\n").apply(ProxyConfig::default());
        assert_eq!(never.tcp_idle_timeout, None, "0 turns the idle timeout off");
    }
}
