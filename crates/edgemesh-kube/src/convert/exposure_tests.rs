//! NodePort, LoadBalancer and externalIPs: what conversion keeps, and what it rejects.

use super::*;
use serde_json::json;

fn convert(spec: Value) -> std::result::Result<ServiceSpec, InvalidObject> {
    convert_with_status(spec, json!({}))
}

fn convert_with_status(
    spec: Value,
    status: Value,
) -> std::result::Result<ServiceSpec, InvalidObject> {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": spec,
        "status": status
    }))
    .expect("valid Service json");
    service(&svc)
}

fn exposure_of(spec: Value) -> Option<Exposure> {
    convert(spec).expect("converts").kind.exposure().cloned()
}

fn tcp_node_port(port: u16, node_port: u16) -> NodePortSpec {
    NodePortSpec {
        protocol: Protocol::Tcp,
        port,
        node_port,
    }
}

#[test]
fn node_ports_external_ips_and_policy_are_kept() {
    let table = [
        // type: NodePort, as the apiserver returns it (nodePort allocated).
        (
            json!({"type": "NodePort", "clusterIP": "10.96.0.10",
                   "ports": [{"port": 80, "nodePort": 30080},
                             {"port": 53, "protocol": "UDP", "nodePort": 30053}]}),
            Some(Exposure {
                node_ports: vec![
                    tcp_node_port(80, 30080),
                    NodePortSpec {
                        protocol: Protocol::Udp,
                        port: 53,
                        node_port: 30053,
                    },
                ],
                ..Exposure::default()
            }),
        ),
        // LoadBalancer: its node ports, and Local.
        (
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                   "externalTrafficPolicy": "Local",
                   "ports": [{"port": 80, "nodePort": 31000}]}),
            Some(Exposure {
                node_ports: vec![tcp_node_port(80, 31000)],
                external_traffic_policy: ExternalTrafficPolicy::Local,
                ..Exposure::default()
            }),
        ),
        // A ClusterIP service with externalIPs.
        (
            json!({"clusterIP": "10.96.0.10", "externalIPs": ["198.51.100.10", "2001:db8::10"],
                   "ports": [{"port": 80}]}),
            Some(Exposure {
                external_ips: vec![
                    "198.51.100.10".parse().expect("ip"),
                    "2001:db8::10".parse().expect("ip"),
                ],
                ..Exposure::default()
            }),
        ),
        // LoadBalancer without node ports (allocateLoadBalancerNodePorts: false), no externalIPs.
        (
            json!({"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                   "ports": [{"port": 80, "nodePort": 0}]}),
            None,
        ),
        (
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
            None,
        ),
    ];
    for (spec, want) in table {
        assert_eq!(exposure_of(spec.clone()), want, "{spec}");
    }
}

#[test]
fn exposed_services_keep_their_cluster_ips() {
    let s = convert(json!({"type": "NodePort", "clusterIP": "10.96.0.10",
                           "ports": [{"port": 80, "nodePort": 30080}]}))
    .expect("converts");
    assert_eq!(
        s.kind.cluster_ips(),
        &["10.96.0.10".parse::<IpAddr>().expect("ip")]
    );
}

#[test]
fn headless_and_external_name_ignore_external_ips() {
    let headless = convert(
        json!({"clusterIP": "None", "externalIPs": ["198.51.100.10"],
                                  "ports": [{"port": 80}]}),
    )
    .expect("converts");
    assert_eq!(headless.kind, ServiceKind::Headless);
}

#[test]
fn bad_exposure_is_rejected_with_a_reason() {
    let table = [
        (
            json!({"clusterIP": "10.96.0.1", "externalIPs": ["ten"], "ports": [{"port": 80}]}),
            "spec.externalIPs 'ten' is not an IP address",
        ),
        (
            json!({"type": "NodePort", "clusterIP": "10.96.0.1",
                   "ports": [{"port": 80, "nodePort": 70000}]}),
            "spec.ports[0].nodePort 70000 is out of range",
        ),
        (
            json!({"type": "NodePort", "clusterIP": "10.96.0.1", "externalTrafficPolicy": "Global",
                   "ports": [{"port": 80, "nodePort": 30080}]}),
            "spec.externalTrafficPolicy 'Global' is not Cluster or Local",
        ),
    ];
    for (spec, want) in table {
        let error = convert(spec.clone())
            .expect_err("must be rejected")
            .to_string();
        assert!(error.starts_with("Service ns/web: "), "{error}");
        assert!(error.contains(want), "{spec}: {error}");
    }
}

#[test]
fn load_balancer_ingress_ips_are_served_like_external_ips() {
    let spec = json!({"type": "LoadBalancer", "clusterIP": "10.96.0.10",
                      "externalIPs": ["198.51.100.10"],
                      "ports": [{"port": 80, "nodePort": 31000}]});
    let status = json!({"loadBalancer": {"ingress": [
        {"ip": "198.51.100.20"},
        {"ip": "198.51.100.10"},
        {"hostname": "lb.example.org"},
        {"ip": "198.51.100.30", "ipMode": "Proxy"},
        {"ip": "198.51.100.40", "ipMode": "VIP"}
    ]}});
    let s = convert_with_status(spec.clone(), status).expect("converts");
    let ips: Vec<String> = s
        .kind
        .exposure()
        .expect("exposed")
        .external_ips
        .iter()
        .map(ToString::to_string)
        .collect();
    // Duplicates once; hostnames and ipMode: Proxy are not ours to intercept.
    assert_eq!(ips, ["198.51.100.10", "198.51.100.20", "198.51.100.40"]);

    let bad = json!({"loadBalancer": {"ingress": [{"ip": "lb"}]}});
    let error = convert_with_status(spec, bad)
        .expect_err("rejected")
        .to_string();
    assert!(
        error.contains("status.loadBalancer.ingress[0].ip 'lb' is not an IP address"),
        "{error}"
    );
}
