//! Keys edgemesh does not read, sorted into why: EdgeMesh fills them at run time, they belong to
//! an older EdgeMesh, or they are simply unknown. And features accepted but not implemented.

use crate::error::Warning;
use crate::{AgentConfig, EdgeTunnel, KubeApiConfig, PprofConfig};

/// Keys EdgeMesh documents as "do not configure" in both the agent's and the gateway's file.
pub(crate) const SHARED_RUNTIME_KEYS: &[&str] = &[
    "kubeAPIConfig.mode",
    "modules.edgeTunnel.mode",
    "modules.edgeTunnel.nodeName",
    "modules.edgeTunnel.configPath",
];

/// Keys EdgeMesh documents as "do not configure": it overwrites them at start-up.
const RUNTIME_KEYS: &[&str] = &[
    "modules.edgeDNS.listenInterface",
    "modules.edgeDNS.kubeAPIConfig",
    "modules.edgeProxy.listenInterface",
    "modules.edgeProxy.socks5Proxy.nodeName",
    "modules.edgeProxy.socks5Proxy.namespace",
    "modules.edgeProxy.loadBalancer.caller",
    "modules.edgeProxy.loadBalancer.nodeName",
    "modules.edgeCNI.encapsulationIP",
];

/// Keys of EdgeMesh ≤ 1.9 (and of its gateway config), with what replaced them.
const LEGACY_KEYS: &[(&str, &str)] = &[
    (
        "commonConfig.mode",
        "the mode is detected from the environment",
    ),
    (
        "commonConfig.configMapName",
        "the file is read from --config",
    ),
    (
        "goChassisConfig",
        "load balancing follows each service's DestinationRule; the ring is set in modules.edgeProxy.loadBalancer.consistentHash",
    ),
    (
        "modules.edgeProxy.subNet",
        "every ClusterIP known to the API is intercepted",
    ),
    (
        "modules.edgeGateway",
        "the gateway has its own config (EdgeMeshGateway)",
    ),
    (
        "modules.tunnel",
        "the tunnel is configured in modules.edgeTunnel",
    ),
    (
        "modules.networking",
        "the proxy is configured in modules.edgeProxy",
    ),
    ("pprofConfig", "it belongs in commonConfig.pprofConfig"),
];

/// The warning for one key the agent's typed parse ignored.
pub(super) fn classify(key: &str) -> Warning {
    classify_in(key, RUNTIME_KEYS, LEGACY_KEYS)
}

/// The warning for one ignored key: run-time (these or [`SHARED_RUNTIME_KEYS`]), legacy (with
/// what replaced it) or unknown.
pub(crate) fn classify_in(key: &str, runtime: &[&str], legacy: &[(&str, &str)]) -> Warning {
    let runtime_keys = SHARED_RUNTIME_KEYS.iter().chain(runtime);
    if runtime_keys.into_iter().any(|k| under(key, k)) {
        return Warning::new(key, "set by EdgeMesh at run time, not by the file; ignored");
    }
    if let Some((_, instead)) = legacy.iter().find(|(k, _)| under(key, k)) {
        return Warning::new(
            key,
            format!("key of an older EdgeMesh release, ignored: {instead}"),
        );
    }
    Warning::new(key, "unknown key, ignored")
}

/// Whether `key` is `prefix` or lies under it.
fn under(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// Settings of the agent's file that are valid but that edgemesh does not act on.
pub(super) fn notices(config: &AgentConfig) -> Vec<Warning> {
    let modules = &config.modules;
    let unsupported = [
        (
            modules.edge_cni.enable,
            "modules.edgeCNI.enable",
            "EdgeMesh's edge CNI is not implemented by edgemesh; ignored",
        ),
        (
            modules.edge_proxy.socks5_proxy.enable && !modules.edge_tunnel.enable,
            "modules.edgeProxy.socks5Proxy.enable",
            "the SOCKS5 proxy reaches nodes through the tunnel, which is off; ignored",
        ),
        pprof_not_applied(
            &config.common_config.pprof_config,
            "commonConfig.pprofConfig.enableProfiling",
        ),
    ];
    let mut out = raised(
        unsupported
            .into_iter()
            .chain(api_not_applied(&config.kube_api_config)),
    );
    out.extend(tunnel_not_applied(&modules.edge_tunnel));
    out
}

pub(crate) type Notice = (bool, &'static str, &'static str);

/// The warnings of the notices that are raised.
pub(crate) fn raised(notices: impl IntoIterator<Item = Notice>) -> Vec<Warning> {
    notices
        .into_iter()
        .filter(|(on, _, _)| *on)
        .map(|(_, key, message)| Warning::new(key, message))
        .collect()
}

/// Go's pprof server, at `key` (the agent and the gateway keep it in different places).
pub(crate) fn pprof_not_applied(pprof: &PprofConfig, key: &'static str) -> Notice {
    (
        pprof.enable_profiling,
        key,
        "Go pprof does not apply to edgemesh; see /metrics on the admin address; ignored",
    )
}

/// `kubeAPIConfig` keys client-go applies and edgemesh's client does not need.
pub(crate) fn api_not_applied(api: &KubeApiConfig) -> [Notice; 3] {
    let fresh = KubeApiConfig::default();
    [
        (
            api.delete_kube_config,
            "kubeAPIConfig.deleteKubeConfig",
            "edgemesh never deletes the kubeconfig; ignored",
        ),
        (
            api.qps != fresh.qps,
            "kubeAPIConfig.qps",
            "client-go's request rate limit; edgemesh makes one list and one watch per kind, without a limiter; ignored",
        ),
        (
            api.burst != fresh.burst,
            "kubeAPIConfig.burst",
            "client-go's request burst; edgemesh makes one list and one watch per kind, without a limiter; ignored",
        ),
    ]
}

/// `modules.edgeTunnel` keys that tune go-libp2p's machinery, which edgemesh's tunnel does not
/// have, with what edgemesh does instead.
const TUNNEL_NOT_APPLIED: &[(&str, &str)] = &[
    (
        "rendezvous",
        "edgemesh finds LAN peers by mDNS and others through relays, without a rendezvous string",
    ),
    (
        "enableIpfsLog",
        "the tunnel logs through --v / --log-level (e.g. --log-level info,libp2p=debug)",
    ),
    (
        "maxCandidates",
        "edgemesh reserves a circuit on every relay in relayNodes",
    ),
    (
        "heartbeatPeriod",
        "peers (relays included) are pinged every 5 s and redialed when they stop answering",
    ),
    (
        "finderPeriod",
        "relays come from relayNodes (reloaded when the file changes), not from a finder",
    ),
    (
        "tunnelLimitConfig",
        "go-libp2p's resource manager limits are not applied by edgemesh",
    ),
    (
        "extraFilteredInterfaces",
        "the tunnel listens on every interface",
    ),
    (
        "metricConfig.enable",
        "edgemesh serves its metrics on the admin address (/metrics), not on metricConfig.port",
    ),
];

/// The `TUNNEL_NOT_APPLIED` keys the file changed from EdgeMesh's default, warned only when the
/// tunnel is on.
pub(crate) fn tunnel_not_applied(t: &EdgeTunnel) -> impl Iterator<Item = Warning> {
    let d = EdgeTunnel::default();
    let changed = [
        ("rendezvous", t.rendezvous != d.rendezvous),
        ("enableIpfsLog", t.enable_ipfs_log != d.enable_ipfs_log),
        ("maxCandidates", t.max_candidates != d.max_candidates),
        ("heartbeatPeriod", t.heartbeat_period != d.heartbeat_period),
        ("finderPeriod", t.finder_period != d.finder_period),
        (
            "tunnelLimitConfig",
            t.tunnel_limit_config != d.tunnel_limit_config,
        ),
        (
            "extraFilteredInterfaces",
            t.extra_filtered_interfaces != d.extra_filtered_interfaces,
        ),
        (
            "metricConfig.enable",
            t.metric_config.enable != d.metric_config.enable,
        ),
    ];
    let enabled = t.enable;
    TUNNEL_NOT_APPLIED
        .iter()
        .filter(move |(key, _)| enabled && changed.contains(&(key, true)))
        .map(|(key, instead)| {
            Warning::new(
                format!("modules.edgeTunnel.{key}"),
                format!("{instead}; ignored"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_keys_are_sorted_by_why() {
        let cases = [
            ("modules.edgeProxy.fooBar", "unknown key, ignored"),
            ("kubeAPIConfig.mode", "set by EdgeMesh at run time"),
            (
                "modules.edgeDNS.kubeAPIConfig",
                "set by EdgeMesh at run time",
            ),
            ("goChassisConfig", "older EdgeMesh release"),
            (
                "goChassisConfig.protocol.tcpBufferSize",
                "older EdgeMesh release",
            ),
            ("modules.tunnel", "older EdgeMesh release"),
            ("modules.tunnelx", "unknown key"),
            ("modules.edgeProxy.subNet", "older EdgeMesh release"),
            ("kubeAPIConfig.modeX", "unknown key"),
        ];
        for (key, want) in cases {
            let warning = classify(key);
            assert_eq!(warning.key, key);
            assert!(warning.message.contains(want), "{key}: {}", warning.message);
        }
    }

    #[test]
    fn defaults_raise_no_notices() {
        assert!(notices(&AgentConfig::default()).is_empty());
        assert!(notices(&AgentConfig::edge_defaults()).is_empty());
    }

    #[test]
    fn each_changed_tunnel_key_is_named_with_why_when_the_tunnel_is_on() {
        let mut config = AgentConfig::default();
        let tunnel = &mut config.modules.edge_tunnel;
        tunnel.rendezvous = "other".to_owned();
        tunnel.enable_ipfs_log = true;
        tunnel.max_candidates += 1;
        tunnel.heartbeat_period += 1;
        tunnel.finder_period += 1;
        tunnel.tunnel_limit_config.enable = !tunnel.tunnel_limit_config.enable;
        tunnel.extra_filtered_interfaces = "eth9".to_owned();
        tunnel.metric_config.enable = true;
        assert!(notices(&config).is_empty(), "the tunnel is off");
        config.modules.edge_tunnel.enable = true;
        let warnings = notices(&config);
        let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
        let want: Vec<String> = TUNNEL_NOT_APPLIED
            .iter()
            .map(|(key, _)| format!("modules.edgeTunnel.{key}"))
            .collect();
        assert_eq!(keys, want);
        for (warning, (_, instead)) in warnings.iter().zip(TUNNEL_NOT_APPLIED) {
            assert_eq!(warning.message, format!("{instead}; ignored"));
        }
    }
}
