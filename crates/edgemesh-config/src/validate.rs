//! `validate()`: every value checked against what is allowed, before anything touches the host.
//!
//! Stricter than EdgeMesh in two ways, both deliberate: keys of disabled modules are checked
//! too (a typo should not wait for the day the module is switched on), and values EdgeMesh
//! would only trip over at run time (ports, addresses, periods) are rejected up front.

pub(crate) mod rules;

use std::path::Path;

use crate::checked::{Checked, ConfigValue};
use crate::error::{ConfigError, ConfigErrors};
use crate::from_flags::FromFlags;
use crate::{
    AgentConfig, CommonConfig, ConsistentHash, EdgeDns, EdgeProxy, EdgeTunnel, KubeApiConfig,
    NodeIdentity,
};

impl AgentConfig {
    /// Every invalid value, in file order; `Ok` when there is none.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut v = Collector::default();
        check_kube_api(&self.kube_api_config, self.from_flags, &mut v);
        check_common(&self.common_config, &mut v);
        if let Some(dir) = &self.manifests {
            v.dir("--manifests", dir);
        }
        check_dns(&self.modules.edge_dns, &mut v);
        check_proxy(&self.modules.edge_proxy, &mut v);
        check_tunnel(&self.modules.edge_tunnel, &mut v);
        v.finish()
    }
}

/// `kubeAPIConfig`, with the keys a flag set named by the flag.
pub(crate) fn check_kube_api(api: &KubeApiConfig, from_flags: FromFlags, v: &mut Collector) {
    if let Some(master) = api.master() {
        v.rule(
            from_flags.key_name("kubeAPIConfig.master"),
            master,
            rules::http_url,
        );
    }
    if let Some(path) = api.kubeconfig() {
        v.file(from_flags.key_name("kubeAPIConfig.kubeConfig"), path);
    }
    let server = &api.meta_server.server;
    v.rule(
        "kubeAPIConfig.metaServer.server",
        server.as_str(),
        rules::http_url,
    );
}

fn check_common(common: &CommonConfig, v: &mut Collector) {
    let name = &common.bridge_device_name;
    v.rule(
        "commonConfig.bridgeDeviceName",
        name.as_str(),
        rules::interface_name,
    );
    v.checked("commonConfig.bridgeDeviceIP", &common.bridge_device_ip);
    v.checked("commonConfig.adminAddr", &common.admin_addr);
}

fn check_dns(dns: &EdgeDns, v: &mut Collector) {
    v.checked("modules.edgeDNS.listenPort", &dns.listen_port);
    for (i, server) in dns.cache_dns.upstream_servers.iter().enumerate() {
        let key = format!("modules.edgeDNS.cacheDNS.upstreamServers[{i}]");
        v.rule(&key, server.as_str(), rules::upstream_server);
    }
    v.at_least(
        "modules.edgeDNS.cacheDNS.cacheTTL",
        dns.cache_dns.cache_ttl,
        0,
    );
    v.rule(
        "modules.edgeDNS.clusterDomain",
        dns.cluster_domain.as_str(),
        rules::dns_domain,
    );
    v.rule("modules.edgeDNS.ttl", &dns.ttl, rules::ttl);
    for (i, network) in dns.allowed_clients.iter().enumerate() {
        let key = format!("modules.edgeDNS.allowedClients[{i}]");
        v.rule(&key, network.as_str(), rules::cidr);
    }
}

fn check_proxy(proxy: &EdgeProxy, v: &mut Collector) {
    v.checked(
        "modules.edgeProxy.socks5Proxy.listenPort",
        &proxy.socks5_proxy.listen_port,
    );
    check_consistent_hash(
        "modules.edgeProxy.loadBalancer.consistentHash",
        &proxy.load_balancer.consistent_hash,
        v,
    );
    v.checked(
        "modules.edgeProxy.serviceFilterMode",
        &proxy.service_filter_mode,
    );
    v.checked("modules.edgeProxy.listenPort", &proxy.listen_port);
    v.checked("modules.edgeProxy.backend", &proxy.backend);
    if let Some(hub) = &proxy.edge_hub_address {
        v.checked("modules.edgeProxy.edgeHubAddress", hub);
    }
    v.at_least(
        "modules.edgeProxy.tcpIdleTimeout",
        proxy.tcp_idle_timeout,
        0,
    );
    v.at_least(
        "modules.edgeProxy.udpIdleTimeout",
        proxy.udp_idle_timeout,
        1,
    );
    v.at_least(
        "modules.edgeProxy.maxUdpSessions",
        proxy.max_udp_sessions,
        1,
    );
}

/// A `loadBalancer.consistentHash` ring at `prefix`.
pub(crate) fn check_consistent_hash(prefix: &str, ring: &ConsistentHash, v: &mut Collector) {
    v.at_least(&format!("{prefix}.partitionCount"), ring.partition_count, 1);
    v.at_least(
        &format!("{prefix}.replicationFactor"),
        ring.replication_factor,
        1,
    );
    v.rule(&format!("{prefix}.load"), &ring.load, rules::load_factor);
}

pub(crate) fn check_tunnel(tunnel: &EdgeTunnel, v: &mut Collector) {
    let prefix = "modules.edgeTunnel";
    v.checked(&format!("{prefix}.listenPort"), &tunnel.listen_port);
    v.checked(&format!("{prefix}.transport"), &tunnel.transport);
    for (i, relay) in tunnel.relay_nodes.iter().enumerate() {
        let node = format!("{prefix}.relayNodes[{i}]");
        v.rule(
            &format!("{node}.nodeName"),
            relay.node_name.as_str(),
            rules::node_name,
        );
        for (j, address) in relay.advertise_address.iter().enumerate() {
            let key = format!("{node}.advertiseAddress[{j}]");
            v.rule(&key, address.as_str(), rules::ip_address);
        }
    }
    v.at_least(&format!("{prefix}.maxCandidates"), tunnel.max_candidates, 0);
    v.at_least(
        &format!("{prefix}.heartbeatPeriod"),
        tunnel.heartbeat_period,
        1,
    );
    v.at_least(&format!("{prefix}.finderPeriod"), tunnel.finder_period, 1);
    if tunnel.psk.enable {
        v.rule(
            &format!("{prefix}.psk.path"),
            tunnel.psk.path.as_str(),
            rules::non_empty_path,
        );
        v.checked(&format!("{prefix}.psk.mode"), &tunnel.psk.mode);
    }
    let limits = &tunnel.tunnel_limit_config;
    let limit_keys = [
        ("tunnelBaseStreamIn", limits.tunnel_base_stream_in),
        ("tunnelBaseStreamOut", limits.tunnel_base_stream_out),
        ("tunnelPeerBaseStreamIn", limits.tunnel_peer_base_stream_in),
        (
            "tunnelPeerBaseStreamOut",
            limits.tunnel_peer_base_stream_out,
        ),
    ];
    for (name, value) in limit_keys {
        v.at_least(&format!("{prefix}.tunnelLimitConfig.{name}"), value, 0);
    }
    v.checked(
        &format!("{prefix}.metricConfig.port"),
        &tunnel.metric_config.port,
    );
    check_node_identity(&tunnel.node_identity, tunnel.enable, v);
}

/// Files named explicitly must exist (the defaults are used only where they exist).
fn check_node_identity(identity: &NodeIdentity, enabled: bool, v: &mut Collector) {
    let prefix = "modules.edgeTunnel.nodeIdentity";
    v.checked(
        &format!("{prefix}.unattestedPeers"),
        &identity.unattested_peers,
    );
    if !enabled {
        return;
    }
    if identity.cert_file.is_empty() && !identity.key_file.is_empty() {
        v.errors.push(ConfigError::invalid(
            &format!("{prefix}.keyFile"),
            &identity.key_file,
            "empty unless certFile is set",
        ));
    }
    for (key, path) in [
        ("certFile", &identity.cert_file),
        ("keyFile", &identity.key_file),
    ] {
        if !path.is_empty() {
            v.file(&format!("{prefix}.{key}"), Path::new(path));
        }
    }
    for (i, path) in identity.ca_files.iter().enumerate() {
        v.file(&format!("{prefix}.caFiles[{i}]"), Path::new(path));
    }
}

/// Gathers errors so the operator sees all of them at once.
#[derive(Default)]
pub(crate) struct Collector {
    pub errors: Vec<ConfigError>,
}

impl Collector {
    pub(crate) fn checked<T: ConfigValue>(&mut self, key: &str, value: &Checked<T>) {
        if !value.is_valid() {
            self.errors
                .push(ConfigError::invalid(key, value.raw(), T::ALLOWED));
        }
    }

    /// `rule` returns what is allowed when `value` is not.
    pub(crate) fn rule<V: std::fmt::Display + ?Sized>(
        &mut self,
        key: &str,
        value: &V,
        rule: impl FnOnce(&V) -> Result<(), &'static str>,
    ) {
        if let Err(allowed) = rule(value) {
            self.errors.push(ConfigError::invalid(key, value, allowed));
        }
    }

    pub(crate) fn at_least(&mut self, key: &str, value: i64, min: i64) {
        if value < min {
            let allowed = format!("an integer >= {min}");
            self.errors.push(ConfigError::invalid(key, value, &allowed));
        }
    }

    pub(crate) fn file(&mut self, key: &str, path: &Path) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => self.errors.push(ConfigError::NotAFile {
                key: key.into(),
                path: path.into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.errors.push(ConfigError::FileMissing {
                    key: key.into(),
                    path: path.into(),
                });
            }
            Err(e) => self.inaccessible(key, path, &e),
        }
    }

    pub(crate) fn dir(&mut self, key: &str, path: &Path) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => self.errors.push(ConfigError::NotADirectory {
                key: key.into(),
                path: path.into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.errors.push(ConfigError::DirMissing {
                    key: key.into(),
                    path: path.into(),
                });
            }
            Err(e) => self.inaccessible(key, path, &e),
        }
    }

    fn inaccessible(&mut self, key: &str, path: &Path, error: &std::io::Error) {
        self.errors.push(ConfigError::Inaccessible {
            key: key.into(),
            path: path.into(),
            reason: error.to_string(),
        });
    }

    pub(crate) fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}
