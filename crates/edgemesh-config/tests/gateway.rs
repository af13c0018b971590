//! EdgeMesh's gateway file (`EdgeMeshGateway`) loads with the agent's machinery: EdgeMesh's
//! defaults, unknown-key warnings, the agent's validation rules, kind checks, `prepare_gateway`.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use common::fixture;
use edgemesh_config::*;

fn load(name: &str, mode: RunningMode) -> Loaded<GatewayConfig> {
    GatewayConfig::load(&fixture(name), mode)
        .unwrap_or_else(|e| panic!("fixture {name} must load: {e}"))
}

fn parse(text: &str) -> Loaded<GatewayConfig> {
    GatewayConfig::from_yaml(text, "gw.yaml", RunningMode::Edge)
        .unwrap_or_else(|e| panic!("must parse: {e}\n{text}"))
}

fn host() -> std::io::Result<String> {
    Ok("edge-1".to_owned())
}

fn env() -> Env {
    Env {
        node_name: Some("edge-1".into()),
        ..Env::default()
    }
}

#[test]
fn the_configmap_edgemesh_ships_loads_without_warnings() {
    let loaded = load("edgemesh-gateway-shipped-configmap.yaml", RunningMode::Edge);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let mut expected = GatewayConfig::defaults(RunningMode::Edge);
    expected.modules.edge_gateway.enable = true;
    expected.modules.edge_tunnel.enable = true;
    assert_eq!(loaded.config, expected);
    loaded.config.validate().unwrap();
    let listen = loaded
        .config
        .modules
        .edge_gateway
        .listen_addresses()
        .unwrap();
    let all = ListenAddresses {
        nics: None,
        include: None,
        exclude: Vec::new(),
    };
    assert_eq!(listen, all);
}

#[test]
fn defaults_are_edgemesh_defaults() {
    let c = GatewayConfig::defaults(RunningMode::Edge);
    assert_eq!(
        c.api_version,
        "gateway.edgemesh.config.kubeedge.io/v1alpha1"
    );
    assert_eq!(c.kind, "EdgeMeshGateway");
    assert_eq!(c.kube_api_config, KubeApiConfig::default());
    assert_eq!(c.kube_api_config.content_type, CONTENT_TYPE_JSON);
    let gw = &c.modules.edge_gateway;
    assert!(!gw.enable, "EdgeMesh's default is off");
    assert_eq!(
        (
            gw.nic.as_str(),
            gw.include_ip.as_str(),
            gw.exclude_ip.as_str()
        ),
        ("*", "*", "*")
    );
    assert_eq!(gw.load_balancer, LoadBalancer::default());
    assert_eq!(c.modules.edge_tunnel, EdgeTunnel::default());
    assert_eq!(
        c.admin_addr(),
        "127.0.0.1:10558".parse::<SocketAddr>().unwrap()
    );
    assert_ne!(
        c.admin_addr(),
        DEFAULT_ADMIN_ADDR,
        "agent and gateway share a node"
    );

    let cloud = GatewayConfig::defaults(RunningMode::Cloud);
    assert_eq!(cloud.kube_api_config.content_type, CONTENT_TYPE_PROTOBUF);
    let loaded = GatewayConfig::from_yaml("", "gw.yaml", RunningMode::Cloud).unwrap();
    assert_eq!(loaded.config, cloud);
    let explicit = "kubeAPIConfig:\n  contentType: application/json\n";
    let loaded = GatewayConfig::from_yaml(explicit, "gw.yaml", RunningMode::Cloud).unwrap();
    assert_eq!(
        loaded.config.kube_api_config.content_type,
        CONTENT_TYPE_JSON
    );
}

#[test]
fn a_file_with_every_key_loads_each_of_them() {
    let loaded = load("edgemesh-gateway-full.yaml", RunningMode::Edge);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    let api = &c.kube_api_config;
    assert_eq!(api.master, "https://119.8.211.54:6443");
    assert_eq!(api.content_type, CONTENT_TYPE_PROTOBUF);
    assert_eq!(api.kube_config, PathBuf::from("/root/.kube/config"));
    assert_eq!(
        c.admin_addr(),
        "127.0.0.1:10658".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.pprof_config.profiling_port, 6060);
    let gw = &c.modules.edge_gateway;
    assert!(gw.enable);
    assert_eq!(gw.nic, "lo,eth0");
    let listen = gw.listen_addresses().unwrap();
    assert_eq!(listen.nics, Some(vec!["lo".to_owned(), "eth0".to_owned()]));
    let nets = |list: &[&str]| list.iter().map(|n| n.parse().unwrap()).collect::<Vec<_>>();
    assert_eq!(
        listen.include,
        Some(nets(&["192.168.0.1/32", "172.16.0.0/12"]))
    );
    assert_eq!(listen.exclude, nets(&["10.0.0.1/32"]));
    assert_eq!(gw.load_balancer.consistent_hash.partition_count, 100);
    let tunnel = &c.modules.edge_tunnel;
    assert!(tunnel.enable);
    assert_eq!(tunnel.relay_nodes[0].node_name, "k8s-master");
    assert_eq!(tunnel.metric_config.port.get(), Some(Port(9999)));
}

#[test]
fn each_component_refuses_the_others_file_by_its_kind() {
    let agent_file =
        "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n";
    let err = GatewayConfig::from_yaml(agent_file, "gw.yaml", RunningMode::Edge).unwrap_err();
    assert_eq!(
        err.to_string(),
        "gw.yaml: kind: 'EdgeMeshAgent' is the config of `edgemesh agent`; `edgemesh gateway` reads kind EdgeMeshGateway"
    );
    let version_only = "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\n";
    let err = GatewayConfig::from_yaml(version_only, "gw.yaml", RunningMode::Edge).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("gw.yaml: apiVersion: 'agent.edgemesh"),
        "{err}"
    );

    let gateway_file = fixture("edgemesh-gateway-full.yaml");
    let err = AgentConfig::load(&gateway_file, RunningMode::Edge).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: kind: 'EdgeMeshGateway' is the config of `edgemesh gateway`; `edgemesh agent` reads kind EdgeMeshAgent",
            gateway_file.display()
        )
    );
}

#[test]
fn other_kinds_and_versions_are_warnings_as_for_the_agent() {
    let loaded = parse("apiVersion: v2\nkind: Something\n");
    let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["apiVersion", "kind"]);
    assert!(loaded.warnings[1].message.contains("EdgeMeshGateway"));
}

#[test]
fn ignored_keys_are_warned_about_with_why() {
    let text = "\
kubeAPIConfig:
  mode: EdgeMode
modules:
  edgeGateway:
    enable: true
    nics: eth0
    loadBalancer:
      caller: GatewayCaller
  edgeTunnel:
    nodeName: n1-gateway
  edgeProxy:
    enable: true
";
    let loaded = parse(text);
    let got: Vec<(String, bool)> = loaded
        .warnings
        .iter()
        .map(|w| (w.key.clone(), w.message.contains("run time")))
        .collect();
    let want = [
        ("kubeAPIConfig.mode", true),
        ("modules.edgeGateway.nics", false),
        ("modules.edgeGateway.loadBalancer.caller", true),
        ("modules.edgeTunnel.nodeName", true),
        ("modules.edgeProxy", false),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(k, r)| ((*k).to_owned(), *r)).collect();
    assert_eq!(got, want);
}

#[test]
fn settings_edgemesh_does_not_act_on_are_noticed() {
    let text = "\
pprofConfig:
  enableProfiling: true
kubeAPIConfig:
  qps: 5
modules:
  edgeGateway:
    includeIP: 2001:db8::/32,10.0.0.0/8
    excludeIP: 2001:db8::1
  edgeTunnel:
    enable: true
    maxCandidates: 3
";
    let keys: Vec<String> = parse(text).warnings.into_iter().map(|w| w.key).collect();
    assert_eq!(
        keys,
        [
            "pprofConfig.enableProfiling",
            "kubeAPIConfig.qps",
            "modules.edgeTunnel.maxCandidates",
            "modules.edgeGateway.includeIP",
            "modules.edgeGateway.excludeIP",
        ]
    );
}

#[test]
fn empty_sections_mean_defaults() {
    let loaded = parse(
        "kubeAPIConfig:\ncommonConfig:\npprofConfig:\nmodules:\n  edgeGateway:\n  edgeTunnel:\n",
    );
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config, GatewayConfig::default());
}

#[test]
fn invalid_values_name_the_key_and_the_entry() {
    let cases: &[(&str, &[&str])] = &[
        (
            "modules:\n  edgeGateway:\n    nic: eth0,a/b\n",
            &[
                "modules.edgeGateway.nic: invalid value 'a/b' (allowed: '*' alone, or a comma list of interface names, e.g. lo,eth0)",
            ],
        ),
        (
            "modules:\n  edgeGateway:\n    includeIP: 10.0.0.1,10.0.0.300,*\n    excludeIP: 10.0.0.0/33\n",
            &[
                "modules.edgeGateway.includeIP: invalid value '10.0.0.300' (allowed: '*' alone, or a comma list of IP addresses and networks, e.g. 192.168.1.56,10.3.0.0/16)",
                "modules.edgeGateway.includeIP: invalid value '*' (allowed: '*' alone, or a comma list of IP addresses and networks, e.g. 192.168.1.56,10.3.0.0/16)",
                "modules.edgeGateway.excludeIP: invalid value '10.0.0.0/33' (allowed: '*' alone, or a comma list of IP addresses and networks, e.g. 192.168.1.56,10.3.0.0/16)",
            ],
        ),
        (
            "modules:\n  edgeGateway:\n    loadBalancer:\n      consistentHash:\n        load: 0.5\n",
            &[
                "modules.edgeGateway.loadBalancer.consistentHash.load: invalid value '0.5' (allowed: a number >= 1.0)",
            ],
        ),
        (
            "modules:\n  edgeTunnel:\n    transport: carrier-pigeon\n",
            &[
                "modules.edgeTunnel.transport: invalid value 'carrier-pigeon' (allowed: tcp, ws, quic)",
            ],
        ),
        (
            "kubeAPIConfig:\n  master: 10.0.0.1:6443\n",
            &[
                "kubeAPIConfig.master: invalid value '10.0.0.1:6443' (allowed: an http:// or https:// URL, e.g. https://192.0.2.1:6443)",
            ],
        ),
        (
            "modules:\n  edgeTunnel:\n    listenPort: 65535\n",
            &[
                "modules.edgeTunnel.listenPort: invalid value '65535' (allowed: 1..=65534: the gateway's tunnel listens on listenPort + 1, as EdgeMesh's)",
            ],
        ),
        (
            "commonConfig:\n  adminAddr: localhost\n",
            &[
                "commonConfig.adminAddr: invalid value 'localhost' (allowed: IP:port, e.g. 127.0.0.1:10557 (port 0 picks a free port))",
            ],
        ),
    ];
    for (text, want) in cases {
        let errors = match parse(text).config.validate() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.messages(),
        };
        assert_eq!(errors, *want, "{text}");
    }
}

#[test]
fn flags_win_and_are_named_in_errors() {
    let mut config = GatewayConfig::default();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    config.apply(&Overrides {
        kubeconfig: Some("/nope".into()),
        admin_addr: Some(addr),
        ..Overrides::default()
    });
    assert_eq!(config.admin_addr(), addr);
    let errors = config.validate().unwrap_err().messages();
    assert_eq!(errors, ["--kubeconfig: file '/nope' does not exist"]);
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("edgemesh-gateway.yaml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

#[test]
fn prepare_gateway_resolves_everything_and_exposes_enable() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = fixture("edgemesh-gateway-shipped-configmap.yaml");
    let p = prepare_gateway_with(&shipped, &Overrides::default(), &env(), host).unwrap();
    assert!(p.enabled());
    p.require_enabled().unwrap();
    assert_eq!(p.node.name, "edge-1");
    assert_eq!(p.tunnel_node_name(), "edge-1-gateway");
    assert_eq!(
        p.tunnel_port, 20007,
        "EdgeMesh's gateway tunnel: listenPort + 1"
    );
    assert_eq!(p.admin_addr(), DEFAULT_GATEWAY_ADMIN_ADDR);
    let meta = ApiEndpoint::MetaServer(DEFAULT_META_SERVER.to_owned());
    assert_eq!(p.discovery.api, Some(meta));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.listen.nics, None);

    let cloud = Env {
        kubernetes_service_host: Some("10.96.0.1".into()),
        ..env()
    };
    let off = write(dir.path(), "modules:\n  edgeTunnel:\n    enable: true\n");
    let p = prepare_gateway_with(&off, &Overrides::default(), &cloud, host).unwrap();
    assert_eq!(p.discovery.api, Some(ApiEndpoint::InCluster));
    assert!(!p.enabled(), "absent enable is EdgeMesh's false");
    let err = p.require_enabled().unwrap_err().to_string();
    assert!(
        err.starts_with("modules.edgeGateway.enable is false")
            && err.ends_with("set modules.edgeGateway.enable: true"),
        "{err}"
    );
}

#[test]
fn prepare_gateway_reports_every_stage_as_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.yaml");
    let err = prepare_gateway_with(&missing, &Overrides::default(), &env(), host).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read config file"),
        "{err}"
    );

    let agent = write(dir.path(), "kind: EdgeMeshAgent\n");
    let err = prepare_gateway_with(&agent, &Overrides::default(), &env(), host).unwrap_err();
    assert!(
        err.to_string()
            .contains("is the config of `edgemesh agent`"),
        "{err}"
    );

    let bad = write(
        dir.path(),
        "modules:\n  edgeGateway:\n    excludeIP: nope\n",
    );
    let err = prepare_gateway_with(&bad, &Overrides::default(), &env(), host).unwrap_err();
    assert_eq!(err.messages().len(), 1);
    assert!(
        err.to_string()
            .starts_with("modules.edgeGateway.excludeIP: invalid value 'nope'")
    );

    let ok = write(dir.path(), "modules:\n  edgeGateway:\n    enable: true\n");
    let no_host = || Err(std::io::Error::other("boom"));
    let err =
        prepare_gateway_with(&ok, &Overrides::default(), &Env::default(), no_host).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot determine the node name"),
        "{err}"
    );
}

#[test]
fn listen_addresses_select_on_a_host() {
    let host: Vec<(String, IpAddr)> = [
        ("lo", "127.0.0.1"),
        ("lo", "::1"),
        ("eth0", "192.168.1.56"),
        ("eth0", "fe80::1"),
        ("eth1", "10.3.2.1"),
    ]
    .iter()
    .map(|(n, ip)| ((*n).to_owned(), ip.parse().unwrap()))
    .collect();
    let module = EdgeGatewayModule {
        nic: "eth0,eth1,wlan0".into(),
        exclude_ip: "10.0.0.0/8".into(),
        ..EdgeGatewayModule::default()
    };
    let listen = module.listen_addresses().unwrap();
    let want: Vec<IpAddr> = vec!["192.168.1.56".parse().unwrap()];
    assert_eq!(listen.select(&host), want);
    assert_eq!(listen.unmatched_nics(&host), ["wlan0"]);
}

#[test]
fn edgemesh_docs_example_commas_are_a_syntax_error_naming_the_line() {
    let text = "modules:\n  edgeGateway:\n    enable: false\n    nic: \"lo,eth0\",\n";
    let err = GatewayConfig::from_yaml(text, "gw.yaml", RunningMode::Edge).unwrap_err();
    assert!(err.to_string().starts_with("gw.yaml:4:"), "{err}");
}
