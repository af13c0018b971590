//! EdgeMesh's own config files load, with EdgeMesh's defaults for every key they leave out.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use common::{fixture, load_fixture, warning_keys};
use edgemesh_config::*;
use edgemesh_model::ServiceFilterMode;

#[test]
fn the_configmap_edgemesh_ships_loads_with_defaults_and_validates() {
    let loaded = load_fixture("edgemesh-shipped-configmap.yaml", RunningMode::Edge);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = &loaded.config;
    assert!(config.modules.edge_proxy.enable);
    assert!(config.modules.edge_tunnel.enable);
    assert!(config.modules.edge_tunnel.relay_nodes.is_empty());
    assert!(
        config.modules.edge_dns.enable,
        "EdgeMesh enables DNS on edge nodes"
    );

    let mut expected = AgentConfig::defaults(RunningMode::Edge);
    expected.modules.edge_proxy.enable = true;
    expected.modules.edge_tunnel.enable = true;
    assert_eq!(*config, expected);
    config.validate().unwrap();
}

#[test]
fn the_full_example_from_edgemesh_docs_loads_every_key() {
    let loaded = load_fixture("edgemesh-docs-full.yaml", RunningMode::Edge);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    let api = &c.kube_api_config;
    assert_eq!(api.master, "https://119.8.211.54:6443");
    assert_eq!(api.content_type, CONTENT_TYPE_PROTOBUF);
    assert_eq!((api.qps, api.burst), (100, 200));
    assert_eq!(api.kube_config, PathBuf::from("/root/.kube/config"));
    assert_eq!(api.meta_server.server, "http://127.0.0.1:10550");
    assert!(!api.meta_server.security.require_authorization);
    assert_eq!(
        c.common_config.bridge_device_ip.get(),
        Some(Ipv4Addr::new(169, 254, 96, 16))
    );

    let dns = &c.modules.edge_dns;
    assert!(!dns.enable, "explicit false wins over the edge default");
    assert_eq!(dns.cache_dns.upstream_servers, ["10.96.0.10", "1.1.1.1"]);

    let proxy = &c.modules.edge_proxy;
    assert_eq!(
        proxy.service_filter_mode.get(),
        Some(ServiceFilterMode::FilterIfLabelExists)
    );
    assert_eq!(proxy.load_balancer.consistent_hash.load, 1.25);

    let tunnel = &c.modules.edge_tunnel;
    assert_eq!(tunnel.transport.get(), Some(Transport::Tcp));
    assert_eq!(tunnel.max_candidates, 5);
    let relays: Vec<_> = tunnel
        .relay_nodes
        .iter()
        .map(|r| r.node_name.as_str())
        .collect();
    assert_eq!(relays, ["k8s-master", "ke-edge1"]);
    assert_eq!(
        tunnel.relay_nodes[1].advertise_address,
        ["2.2.2.2", "3.3.3.3"]
    );
    assert!(!tunnel.tunnel_limit_config.enable);
    assert_eq!(tunnel.tunnel_limit_config.tunnel_peer_base_stream_in, 1024);
}

#[test]
fn the_docs_example_validates_once_its_kubeconfig_exists() {
    let mut config = load_fixture("edgemesh-docs-full.yaml", RunningMode::Edge).config;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("config");
    config.kube_api_config.kube_config = missing.clone();
    let errors = config.validate().unwrap_err().messages();
    let want = format!(
        "kubeAPIConfig.kubeConfig: file '{}' does not exist",
        missing.display()
    );
    assert_eq!(errors, [want]);

    std::fs::write(&missing, "apiVersion: v1\n").unwrap();
    config.validate().unwrap();
}

#[test]
fn an_edgemesh_1_9_file_loads_with_aliases_and_warnings() {
    let loaded = load_fixture("legacy-v1.9.yaml", RunningMode::Edge);
    let c = &loaded.config;
    assert_eq!(c.common_config.bridge_device_name, "edgemesh1");
    assert_eq!(
        c.common_config.bridge_device_ip.get(),
        Some(Ipv4Addr::new(169, 254, 96, 17))
    );
    assert_eq!(c.modules.edge_proxy.listen_port.get(), Some(Port(40002)));
    let mut keys = warning_keys(&loaded);
    keys.sort();
    let want = [
        "commonConfig.configMapName",
        "commonConfig.dummyDeviceIP",
        "commonConfig.dummyDeviceName",
        "commonConfig.mode",
        "goChassisConfig",
        "modules.edgeGateway",
        "modules.edgeProxy.subNet",
        "modules.tunnel",
    ];
    assert_eq!(keys, want);
    for w in &loaded.warnings {
        assert!(w.message.contains("older EdgeMesh release"), "{w}");
    }
    c.validate().unwrap();
}

#[test]
fn unknown_keys_are_warnings_naming_their_full_path() {
    let loaded = load_fixture("unknown-keys.yaml", RunningMode::Edge);
    let got: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let want = [
        "topLevelTypo: unknown key, ignored",
        "kubeAPIConfig.mode: set by EdgeMesh at run time, not by the file; ignored",
        "kubeAPIConfig.metaServer.securty: unknown key, ignored",
        "modules.edgeDNS.listenInterface: set by EdgeMesh at run time, not by the file; ignored",
        "modules.edgeProxy.fooBar: unknown key, ignored",
        "modules.edgeProxy.loadBalancer.caller: set by EdgeMesh at run time, not by the file; ignored",
        "modules.edgeTunnel.relayNodes[0].weight: unknown key, ignored",
        "modules.edgeCNI.encapsulationIP: set by EdgeMesh at run time, not by the file; ignored",
    ];
    assert_eq!(got, want);
    loaded.config.validate().unwrap();
}

#[test]
fn a_file_of_comments_is_all_defaults_in_either_mode() {
    for mode in [RunningMode::Edge, RunningMode::Cloud] {
        let loaded = load_fixture("comments-only.yaml", mode);
        assert_eq!(loaded.config, AgentConfig::defaults(mode), "{mode:?}");
        assert!(loaded.warnings.is_empty());
    }
}

#[test]
fn extension_keys_are_read() {
    let c = load_fixture("extensions.yaml", RunningMode::Edge).config;
    assert_eq!(
        c.common_config.admin_addr.get(),
        Some("127.0.0.1:0".parse().unwrap())
    );
    assert_eq!(c.modules.edge_dns.cluster_domain, "corp.example");
    assert_eq!(c.modules.edge_dns.ttl, 5);
    assert_eq!(c.modules.edge_proxy.listen_port.get(), Some(Port(15001)));
    assert_eq!(
        c.modules.edge_proxy.backend.get(),
        Some(ProxyBackend::Iptables)
    );
    c.validate().unwrap();
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let path = fixture("no-such-file.yaml");
    let err = AgentConfig::load(&path, RunningMode::Edge).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("cannot read config file "), "{text}");
    assert!(text.contains("no-such-file.yaml"), "{text}");
}
