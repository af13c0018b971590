//! `modules.edgeProxy` of EdgeMesh's agent config as the proxy reads it (the proxier's part is
//! `edgemesh_netfilter::settings`).

use edgemesh_config::{DEFAULT_PROXY_LISTEN_PORT, EdgeProxy, LoadBalancer};
use edgemesh_lb::ConsistentHashConfig;

/// `modules.edgeProxy`: the transparent proxy.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// One port for TCP (REDIRECT) and UDP (TPROXY).
    pub port: u16,
    pub consistent_hash: ConsistentHashConfig,
}

impl ProxySettings {
    pub fn from_config(proxy: &EdgeProxy) -> Self {
        Self {
            port: proxy
                .listen_port
                .get()
                .map_or(DEFAULT_PROXY_LISTEN_PORT, |p| p.0),
            consistent_hash: consistent_hash_of(&proxy.load_balancer),
        }
    }
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
}
