//! Invalid values are rejected with one exact line naming the key, the value and what is allowed.

mod common;

use common::{parse, validation_errors};
use edgemesh_config::{AgentConfig, ConfigError, Overrides, RunningMode};

#[test]
fn each_invalid_value_yields_its_exact_message() {
    let cases: &[(&str, &str)] = &[
        (
            "modules:\n  edgeProxy:\n    serviceFilterMode: foo\n",
            "modules.edgeProxy.serviceFilterMode: invalid value 'foo' (allowed: FilterIfLabelExists, FilterIfLabelDoesNotExists)",
        ),
        (
            "modules:\n  edgeTunnel:\n    enable: true\n    transport: carrier-pigeon\n",
            "modules.edgeTunnel.transport: invalid value 'carrier-pigeon' (allowed: tcp, ws, quic)",
        ),
        (
            "modules:\n  edgeTunnel:\n    psk:\n      mode: rc4\n",
            "modules.edgeTunnel.psk.mode: invalid value 'rc4' (allowed: noise, pnet)",
        ),
        (
            "kubeAPIConfig:\n  kubeConfig: /nope\n",
            "kubeAPIConfig.kubeConfig: file '/nope' does not exist",
        ),
        (
            "kubeAPIConfig:\n  kubeConfig: /\n",
            "kubeAPIConfig.kubeConfig: '/' is not a regular file",
        ),
        (
            "modules:\n  edgeDNS:\n    listenPort: 0\n",
            "modules.edgeDNS.listenPort: invalid value '0' (allowed: 1..=65535)",
        ),
        (
            "modules:\n  edgeProxy:\n    listenPort: 65536\n",
            "modules.edgeProxy.listenPort: invalid value '65536' (allowed: 1..=65535)",
        ),
        (
            "modules:\n  edgeTunnel:\n    listenPort: -1\n",
            "modules.edgeTunnel.listenPort: invalid value '-1' (allowed: 1..=65535)",
        ),
        (
            "modules:\n  edgeProxy:\n    socks5Proxy:\n      listenPort: http\n",
            "modules.edgeProxy.socks5Proxy.listenPort: invalid value 'http' (allowed: 1..=65535)",
        ),
        (
            "modules:\n  edgeTunnel:\n    metricConfig:\n      port: 1.5\n",
            "modules.edgeTunnel.metricConfig.port: invalid value '1.5' (allowed: 1..=65535)",
        ),
        (
            "commonConfig:\n  bridgeDeviceIP: 169.254.96\n",
            "commonConfig.bridgeDeviceIP: invalid value '169.254.96' (allowed: an IPv4 address, e.g. 169.254.96.16)",
        ),
        (
            "commonConfig:\n  bridgeDeviceIP: fd00::1\n",
            "commonConfig.bridgeDeviceIP: invalid value 'fd00::1' (allowed: an IPv4 address, e.g. 169.254.96.16)",
        ),
        (
            "commonConfig:\n  bridgeDeviceName: a-very-long-bridge-name\n",
            "commonConfig.bridgeDeviceName: invalid value 'a-very-long-bridge-name' (allowed: an interface name of 1 to 15 characters without '/' or whitespace)",
        ),
        (
            "commonConfig:\n  adminAddr: localhost\n",
            "commonConfig.adminAddr: invalid value 'localhost' (allowed: IP:port, e.g. 127.0.0.1:10557 (port 0 picks a free port))",
        ),
        (
            "modules:\n  edgeDNS:\n    cacheDNS:\n      upstreamServers: [10.96.0.10, 'dns.example:53']\n",
            "modules.edgeDNS.cacheDNS.upstreamServers[1]: invalid value 'dns.example:53' (allowed: an IP address or IP:port, e.g. 10.96.0.10 or 10.96.0.10:53)",
        ),
        (
            "modules:\n  edgeProxy:\n    loadBalancer:\n      consistentHash:\n        partitionCount: 0\n",
            "modules.edgeProxy.loadBalancer.consistentHash.partitionCount: invalid value '0' (allowed: an integer >= 1)",
        ),
        (
            "modules:\n  edgeProxy:\n    loadBalancer:\n      consistentHash:\n        replicationFactor: -3\n",
            "modules.edgeProxy.loadBalancer.consistentHash.replicationFactor: invalid value '-3' (allowed: an integer >= 1)",
        ),
        (
            "modules:\n  edgeProxy:\n    loadBalancer:\n      consistentHash:\n        load: 0.5\n",
            "modules.edgeProxy.loadBalancer.consistentHash.load: invalid value '0.5' (allowed: a number >= 1.0)",
        ),
        (
            "modules:\n  edgeProxy:\n    backend: ipvs\n",
            "modules.edgeProxy.backend: invalid value 'ipvs' (allowed: auto, nftables, iptables)",
        ),
        (
            "modules:\n  edgeTunnel:\n    relayNodes:\n    - advertiseAddress: [203.0.113.7]\n",
            "modules.edgeTunnel.relayNodes[0].nodeName: invalid value '' (allowed: a node name (no spaces), e.g. edge-node-1)",
        ),
        (
            "modules:\n  edgeTunnel:\n    relayNodes:\n    - nodeName: relay-1\n      advertiseAddress: [203.0.113.7, relay.example]\n",
            "modules.edgeTunnel.relayNodes[0].advertiseAddress[1]: invalid value 'relay.example' (allowed: an IP address, e.g. 203.0.113.7)",
        ),
        (
            "modules:\n  edgeProxy:\n    tcpIdleTimeout: -1\n",
            "modules.edgeProxy.tcpIdleTimeout: invalid value '-1' (allowed: an integer >= 0)",
        ),
        (
            "modules:\n  edgeProxy:\n    udpIdleTimeout: 0\n",
            "modules.edgeProxy.udpIdleTimeout: invalid value '0' (allowed: an integer >= 1)",
        ),
        (
            "modules:\n  edgeProxy:\n    maxUdpSessions: 0\n",
            "modules.edgeProxy.maxUdpSessions: invalid value '0' (allowed: an integer >= 1)",
        ),
        (
            "modules:\n  edgeTunnel:\n    heartbeatPeriod: 0\n",
            "modules.edgeTunnel.heartbeatPeriod: invalid value '0' (allowed: an integer >= 1)",
        ),
        (
            "kubeAPIConfig:\n  master: 192.0.2.1:6443\n",
            "kubeAPIConfig.master: invalid value '192.0.2.1:6443' (allowed: an http:// or https:// URL, e.g. https://192.0.2.1:6443)",
        ),
        (
            "kubeAPIConfig:\n  metaServer:\n    server: tcp://127.0.0.1:10550\n",
            "kubeAPIConfig.metaServer.server: invalid value 'tcp://127.0.0.1:10550' (allowed: an http:// or https:// URL, e.g. https://192.0.2.1:6443)",
        ),
        (
            "modules:\n  edgeDNS:\n    clusterDomain: 'cluster..local'\n",
            "modules.edgeDNS.clusterDomain: invalid value 'cluster..local' (allowed: a DNS domain, e.g. cluster.local)",
        ),
        (
            "modules:\n  edgeDNS:\n    ttl: -5\n",
            "modules.edgeDNS.ttl: invalid value '-5' (allowed: 0..=2147483647 seconds)",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(validation_errors(yaml), [*want], "for:\n{yaml}");
    }
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let yaml = "\
kubeAPIConfig:
  kubeConfig: /nope
modules:
  edgeProxy:
    serviceFilterMode: foo
  edgeTunnel:
    transport: carrier-pigeon
";
    let errors = validation_errors(yaml);
    let keys: Vec<&str> = errors
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "kubeAPIConfig.kubeConfig",
            "modules.edgeProxy.serviceFilterMode",
            "modules.edgeTunnel.transport"
        ]
    );
    let all = parse(yaml).config.validate().unwrap_err();
    assert_eq!(all.to_string().lines().count(), 3);
}

#[test]
fn flag_values_are_validated_under_the_flag_name() {
    let mut config = AgentConfig::edge_defaults();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone");
    config.apply(&Overrides {
        kubeconfig: Some("/nope".into()),
        master: Some("ftp://x".into()),
        manifests_dir: Some(missing.clone()),
        ..Overrides::default()
    });
    let errors = config.validate().unwrap_err().messages();
    assert_eq!(
        errors,
        [
            "--master: invalid value 'ftp://x' (allowed: an http:// or https:// URL, e.g. https://192.0.2.1:6443)".to_owned(),
            "--kubeconfig: file '/nope' does not exist".to_owned(),
            format!("--manifests: directory '{}' does not exist", missing.display()),
        ]
    );
}

#[test]
fn a_manifests_path_that_is_a_file_is_rejected() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut config = AgentConfig::edge_defaults();
    config.apply(&Overrides {
        manifests_dir: Some(file.path().to_owned()),
        ..Overrides::default()
    });
    let errors = config.validate().unwrap_err().messages();
    assert_eq!(
        errors,
        [format!(
            "--manifests: '{}' is not a directory",
            file.path().display()
        )]
    );
}

#[test]
fn syntax_and_type_errors_name_the_file_the_line_and_the_key() {
    let cases = [
        (
            "modules:\n  edgeProxy:\n    enable: maybe\n",
            "test.yaml:3:13: modules.edgeProxy.enable: ",
        ),
        (
            "modules:\n  edgeTunnel:\n    relayNodes:\n    - nodeName: [1]\n",
            "test.yaml:4:17: modules.edgeTunnel.relayNodes[0].nodeName: ",
        ),
        (
            "kubeAPIConfig:\n  qps: 99999999999\n",
            "test.yaml:2:8: kubeAPIConfig.qps: ",
        ),
        (
            "modules:\n  edgeProxy:\n    listenPort: {a: 1}\n",
            "test.yaml:3:17: modules.edgeProxy.listenPort: ",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "test.yaml:3:1: .: more than one YAML document",
        ),
    ];
    for (yaml, prefix) in cases {
        let err = AgentConfig::from_yaml(yaml, "test.yaml", RunningMode::Edge).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(prefix),
            "got {text:?}, want prefix {prefix:?}"
        );
        assert!(!text.contains('\n'), "one line: {text:?}");
    }
}

/// Go's YAML, which EdgeMesh reads its file with, keeps the last of a key written twice, and
/// EdgeMesh's Helm chart writes `serviceFilterMode` twice: a warning naming both lines, not a
/// refusal.
#[test]
fn a_key_written_twice_is_a_warning_and_the_last_value_wins() {
    let yaml = "modules:\n  edgeProxy:\n    enable: true\n    enable: false\n";
    let loaded = AgentConfig::from_yaml(yaml, "test.yaml", RunningMode::Edge).unwrap();
    assert!(
        !loaded.config.modules.edge_proxy.enable,
        "the last value wins"
    );
    let warning = loaded
        .warnings
        .iter()
        .find(|w| w.key == "modules.edgeProxy.enable")
        .unwrap_or_else(|| panic!("no warning: {:?}", loaded.warnings));
    assert!(warning.message.contains("lines 3 and 4"), "{warning}");
}

#[test]
fn a_legacy_alias_next_to_its_new_key_is_an_error_not_a_silent_choice() {
    let yaml = "commonConfig:\n  dummyDeviceName: a\n  bridgeDeviceName: b\n";
    let err = AgentConfig::from_yaml(yaml, "test.yaml", RunningMode::Edge).unwrap_err();
    assert!(
        err.to_string()
            .contains("duplicate field `bridgeDeviceName`"),
        "{err}"
    );
}
