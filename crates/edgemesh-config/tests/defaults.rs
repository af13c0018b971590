//! Defaults equal EdgeMesh's (`pkg/apis/config/v1alpha1/default.go`), mode by mode; flags win
//! over the file; discovery follows the documented rules end to end.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use common::parse;
use edgemesh_config::*;
use edgemesh_model::ServiceFilterMode;

#[test]
fn defaults_are_edgemesh_defaults() {
    let c = AgentConfig::defaults(RunningMode::Edge);
    assert_eq!(c.api_version, "agent.edgemesh.config.kubeedge.io/v1alpha1");
    assert_eq!(c.kind, "EdgeMeshAgent");

    let api = &c.kube_api_config;
    assert_eq!((api.master.as_str(), api.kubeconfig()), ("", None));
    assert_eq!(api.content_type, "application/json");
    assert_eq!(
        (api.qps, api.burst, api.delete_kube_config),
        (100, 200, false)
    );
    assert_eq!(api.meta_server.server, "http://127.0.0.1:10550");
    let sec = &api.meta_server.security;
    assert!(!sec.require_authorization && !sec.insecure_skip_tls_verify);
    assert_eq!(
        sec.tls_ca_file,
        PathBuf::from("/etc/edgemesh/metaserver/rootCA.crt")
    );
    assert_eq!(
        sec.tls_cert_file,
        PathBuf::from("/etc/edgemesh/metaserver/server.crt")
    );
    assert_eq!(
        sec.tls_private_key_file,
        PathBuf::from("/etc/edgemesh/metaserver/server.key")
    );

    let common = &c.common_config;
    assert_eq!(common.bridge_device_name, "edgemesh0");
    assert_eq!(
        common.bridge_device_ip.get(),
        Some(Ipv4Addr::new(169, 254, 96, 16))
    );
    assert_eq!(common.pprof_config, PprofConfig::default());
    assert_eq!(
        common.admin_addr.get(),
        Some("127.0.0.1:10557".parse().unwrap())
    );

    let dns = &c.modules.edge_dns;
    assert!(dns.enable);
    assert_eq!(dns.listen_port.get(), Some(Port(53)));
    let cache = &dns.cache_dns;
    assert!(!cache.enable && cache.auto_detect && cache.upstream_servers.is_empty());
    assert_eq!(cache.cache_ttl, 30);
    assert_eq!(
        (dns.cluster_domain.as_str(), dns.ttl),
        ("cluster.local", 30)
    );

    let proxy = &c.modules.edge_proxy;
    assert!(!proxy.enable);
    assert!(!proxy.socks5_proxy.enable);
    assert_eq!(proxy.socks5_proxy.listen_port.get(), Some(Port(10800)));
    let ring = &proxy.load_balancer.consistent_hash;
    assert_eq!(
        (ring.partition_count, ring.replication_factor, ring.load),
        (100, 10, 1.25)
    );
    let mode = proxy.service_filter_mode.get();
    assert_eq!(mode, Some(ServiceFilterMode::FilterIfLabelExists));
    assert_eq!(proxy.listen_port.get(), Some(Port(40001)));
    assert_eq!(proxy.backend.get(), Some(ProxyBackend::Auto));
    assert_eq!(
        (
            proxy.tcp_idle_timeout,
            proxy.udp_idle_timeout,
            proxy.max_udp_sessions
        ),
        (900, 120, 65_536)
    );

    let t = &c.modules.edge_tunnel;
    assert!(!t.enable && !t.enable_ipfs_log);
    assert_eq!(t.listen_port.get(), Some(Port(20006)));
    assert_eq!(t.transport.get(), Some(Transport::Tcp));
    assert_eq!(t.rendezvous, "EDGEMESH_PLAYGOUND");
    assert!(t.relay_nodes.is_empty());
    assert_eq!(
        (t.max_candidates, t.heartbeat_period, t.finder_period),
        (15, 120, 60)
    );
    assert!(t.psk.enable);
    assert_eq!(t.psk.path, "/etc/edgemesh/psk");
    let limits = &t.tunnel_limit_config;
    assert!(limits.enable);
    let streams = (
        limits.tunnel_base_stream_in,
        limits.tunnel_base_stream_out,
        limits.tunnel_peer_base_stream_in,
        limits.tunnel_peer_base_stream_out,
    );
    assert_eq!(streams, (10240, 10240, 1024, 1024));
    assert_eq!(
        (
            t.listen_interfaces.as_str(),
            t.extra_filtered_interfaces.as_str()
        ),
        ("*", "")
    );
    assert!(!t.metric_config.enable);
    assert_eq!(t.metric_config.port.get(), Some(Port(9999)));

    assert!(!c.modules.edge_cni.enable);
    assert_eq!(c.manifests, None);
    c.validate().unwrap();
}

#[test]
fn cloud_mode_turns_dns_off_and_uses_protobuf_unless_the_file_says_otherwise() {
    let cloud = AgentConfig::defaults(RunningMode::Cloud);
    assert!(!cloud.modules.edge_dns.enable);
    assert_eq!(cloud.kube_api_config.content_type, CONTENT_TYPE_PROTOBUF);

    let yaml =
        "kubeAPIConfig:\n  contentType: application/json\nmodules:\n  edgeDNS:\n    enable: true\n";
    let c = AgentConfig::from_yaml(yaml, "t", RunningMode::Cloud)
        .unwrap()
        .config;
    assert!(c.modules.edge_dns.enable);
    assert_eq!(c.kube_api_config.content_type, CONTENT_TYPE_JSON);

    let yaml = "modules:\n  edgeDNS:\n    listenPort: 5353\n";
    let c = AgentConfig::from_yaml(yaml, "t", RunningMode::Cloud)
        .unwrap()
        .config;
    assert!(
        !c.modules.edge_dns.enable,
        "not written, so the cloud default holds"
    );
    let c = AgentConfig::from_yaml(yaml, "t", RunningMode::Edge)
        .unwrap()
        .config;
    assert!(
        c.modules.edge_dns.enable,
        "not written, so the edge default holds"
    );
}

#[test]
fn running_mode_follows_the_kubelet_injected_variable() {
    let edge = Env::default();
    let cloud = Env {
        kubernetes_service_host: Some("10.96.0.1".into()),
        ..Env::default()
    };
    assert_eq!(RunningMode::detect(&edge), RunningMode::Edge);
    assert_eq!(RunningMode::detect(&cloud), RunningMode::Cloud);
}

#[test]
fn edge_defaults_are_an_edge_node_with_proxy_and_dns_and_no_tunnel() {
    let c = AgentConfig::edge_defaults();
    assert!(c.modules.edge_proxy.enable);
    assert!(c.modules.edge_dns.enable);
    assert!(
        !c.modules.edge_tunnel.enable,
        "no relay nodes without a file"
    );
    let mut expected = AgentConfig::defaults(RunningMode::Edge);
    expected.modules.edge_proxy.enable = true;
    assert_eq!(c, expected);
    c.validate().unwrap();
}

#[test]
fn empty_sections_mean_defaults() {
    let yaml = "kubeAPIConfig:\ncommonConfig:\nmodules:\n  edgeDNS:\n  edgeProxy:\n    loadBalancer:\n  edgeTunnel:\n    enable: true\n    relayNodes:\n";
    let loaded = parse(yaml);
    let mut expected = AgentConfig::defaults(RunningMode::Edge);
    expected.modules.edge_tunnel.enable = true;
    assert_eq!(loaded.config, expected);
}

#[test]
fn overrides_win_over_the_file() {
    let yaml = "kubeAPIConfig:\n  master: https://file:6443\n  kubeConfig: /file/kubeconfig\ncommonConfig:\n  adminAddr: 127.0.0.1:9000\n";
    let mut config = parse(yaml).config;
    let admin: SocketAddr = "127.0.0.1:0".parse().unwrap();
    config.apply(&Overrides {
        master: Some("https://flag:6443".into()),
        kubeconfig: Some("/flag/kubeconfig".into()),
        admin_addr: Some(admin),
        manifests_dir: Some("/flag/manifests".into()),
        node_name: None,
    });
    let api = &config.kube_api_config;
    assert_eq!(api.master, "https://flag:6443");
    assert_eq!(
        api.kubeconfig(),
        Some(PathBuf::from("/flag/kubeconfig").as_path())
    );
    assert_eq!(config.common_config.admin_addr.get(), Some(admin));
    let discovery = config.discovery(&Env::default());
    assert_eq!(
        discovery.api,
        Some(ApiEndpoint::Kubeconfig("/flag/kubeconfig".into()))
    );
    assert_eq!(discovery.manifests, Some(PathBuf::from("/flag/manifests")));
}

#[test]
fn discovery_from_files() {
    let host = |h: Option<&str>| Env {
        kubernetes_service_host: h.map(str::to_owned),
        node_name: None,
    };
    let shipped = "modules:\n  edgeProxy:\n    enable: true\n";
    let secure = "kubeAPIConfig:\n  metaServer:\n    server: http://127.0.0.1:10550\n    security:\n      requireAuthorization: true\n";
    let cases = [
        (
            shipped,
            None,
            Some(ApiEndpoint::MetaServer(DEFAULT_META_SERVER.into())),
        ),
        (shipped, Some("10.96.0.1"), Some(ApiEndpoint::InCluster)),
        (
            secure,
            None,
            Some(ApiEndpoint::MetaServer("https://127.0.0.1:10550".into())),
        ),
        (
            "kubeAPIConfig:\n  master: http://127.0.0.1:10261\n",
            Some("10.96.0.1"),
            Some(ApiEndpoint::Master("http://127.0.0.1:10261".into())),
        ),
    ];
    for (yaml, service_host, want) in cases {
        let config = parse(yaml).config;
        assert_eq!(config.discovery(&host(service_host)).api, want, "{yaml}");
    }
}

#[test]
fn manifests_alone_run_offline_and_beside_an_explicit_api_both_run() {
    let mut offline = AgentConfig::edge_defaults();
    offline.apply(&Overrides {
        manifests_dir: Some("/m".into()),
        ..Overrides::default()
    });
    let d = offline.discovery(&Env::default());
    assert_eq!((d.api, d.manifests), (None, Some(PathBuf::from("/m"))));

    let mut both = parse("kubeAPIConfig:\n  master: https://m:6443\n").config;
    both.apply(&Overrides {
        manifests_dir: Some("/m".into()),
        ..Overrides::default()
    });
    let d = both.discovery(&Env::default());
    assert_eq!(d.api, Some(ApiEndpoint::Master("https://m:6443".into())));
    assert_eq!(d.manifests, Some(PathBuf::from("/m")));
}
