use super::*;
use serde_json::json;

fn svc(spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": spec
    }))
    .expect("valid Service json")
}

#[test]
fn cluster_ip_service_converts() {
    let s = service(&svc(json!({
        "clusterIP": "10.96.0.10",
        "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}
    })))
    .expect("converts");
    assert_eq!(s.key, ObjectKey::new("ns", "web"));
    assert_eq!(
        s.kind,
        ServiceKind::ClusterIp {
            cluster_ips: vec!["10.96.0.10".parse().unwrap()]
        }
    );
    assert_eq!(s.ports[0].protocol, Protocol::Tcp);
    assert_eq!(s.ports[0].target_port, TargetPort::Number(8080));
    assert_eq!(s.session_affinity.unwrap().timeout, Duration::from_secs(60));
}

#[test]
fn headless_and_external_name() {
    let h = service(&svc(json!({"clusterIP": "None", "ports": []}))).expect("headless");
    assert_eq!(h.kind, ServiceKind::Headless);
    let e = service(&svc(
        json!({"type": "ExternalName", "externalName": "example.org"}),
    ))
    .expect("external");
    assert_eq!(
        e.kind,
        ServiceKind::ExternalName {
            external_name: "example.org".into()
        }
    );
}

#[test]
fn bad_services_are_rejected_with_a_reason() {
    let cases = [
        (
            json!({"clusterIP": "10.96.0.1", "ports": []}),
            "spec.ports is empty",
        ),
        (
            json!({"clusterIP": "ten", "ports": [{"port": 80}]}),
            "'ten' is not an IP address",
        ),
        (
            json!({"clusterIP": "10.96.0.1", "ports": [{"port": 70000}]}),
            "out of range",
        ),
        (
            json!({"clusterIP": "10.96.0.1", "ports": [{"port": 0}]}),
            "out of range",
        ),
        (
            json!({"clusterIP": "10.96.0.1", "ports": [{"port": 53, "protocol": "ICMP"}]}),
            "ICMP",
        ),
        (
            json!({"clusterIP": "10.96.0.1", "ports": [{"port": 1}, {"port": 1}]}),
            "listed twice",
        ),
        (json!({"type": "ExternalName"}), "without spec.externalName"),
    ];
    for (spec, want) in cases {
        let err = service(&svc(spec.clone())).expect_err("must be rejected");
        let text = err.to_string();
        assert!(text.starts_with("Service ns/web: "), "{text}");
        assert!(text.contains(want), "{spec}: {text}");
    }
}

#[test]
fn proxy_name_label_is_detected() {
    let mut s = svc(json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}));
    s.metadata.labels = Some(
        [(SERVICE_PROXY_NAME_LABEL.to_string(), String::new())]
            .into_iter()
            .collect(),
    );
    assert!(service(&s).expect("converts").has_proxy_name_label);
}

#[test]
fn endpoint_slice_converts_with_readiness() {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "ns",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["192.0.2.1"], "nodeName": "n1"},
            {"addresses": ["192.0.2.2"], "conditions": {"ready": false}}
        ]
    }))
    .expect("valid slice");
    let set = endpoint_slice(&slice).expect("converts");
    assert_eq!(set.service, ObjectKey::new("ns", "web"));
    assert_eq!(set.subsets[0].ports[0].port, 8080);
    assert!(set.subsets[0].endpoints[0].ready);
    assert!(!set.subsets[0].endpoints[1].ready);
}

#[test]
fn endpoint_slice_without_service_label_is_rejected() {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "namespace": "ns"}, "addressType": "IPv4", "endpoints": []
    }))
    .expect("valid slice");
    let err = endpoint_slice(&slice).expect_err("rejected");
    assert!(
        err.to_string().contains("kubernetes.io/service-name"),
        "{err}"
    );
}

#[test]
fn core_endpoints_convert_ready_and_not_ready() {
    let eps: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns"},
        "subsets": [{
            "addresses": [{"ip": "192.0.2.1", "nodeName": "n1"}],
            "notReadyAddresses": [{"ip": "192.0.2.2"}],
            "ports": [{"name": "http", "port": 8080}]
        }]
    }))
    .expect("valid endpoints");
    let set = endpoints(&eps).expect("converts");
    assert_eq!(set.service, ObjectKey::new("ns", "web"));
    let ready: Vec<bool> = set.subsets[0].endpoints.iter().map(|e| e.ready).collect();
    assert_eq!(ready, [true, false]);
}

fn dr(lb: Value) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"host": "web", "trafficPolicy": {"loadBalancer": lb}}
    })
}

#[test]
fn destination_rule_policies() {
    let cases = [
        (json!({"simple": "RANDOM"}), LbPolicy::Random),
        (json!({"simple": "ROUND_ROBIN"}), LbPolicy::RoundRobin),
        (
            json!({"consistentHash": {"useSourceIp": true}}),
            LbPolicy::ConsistentHash(HashKey::SourceIp),
        ),
        (
            json!({"consistentHash": {"httpHeaderName": "X-User"}}),
            LbPolicy::ConsistentHash(HashKey::HttpHeader("x-user".into())),
        ),
    ];
    for (lb, want) in cases {
        assert_eq!(destination_rule(&dr(lb)).expect("converts").policy, want);
    }
    let no_policy =
        json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"host": "web"}});
    assert_eq!(
        destination_rule(&no_policy).expect("converts").policy,
        LbPolicy::RoundRobin
    );
}

#[test]
fn unknown_destination_rule_policies_are_rejected() {
    for lb in [
        json!({"simple": "LEAST_CONN"}),
        json!({"consistentHash": {"httpCookie": {"name": "c"}}}),
        json!({"warmupDurationSecs": 3}),
        json!({"simple": 7}),
    ] {
        let err = destination_rule(&dr(lb.clone())).expect_err("rejected");
        assert!(
            err.to_string().starts_with("DestinationRule ns/web: "),
            "{lb}: {err}"
        );
    }
}

#[test]
fn destination_rule_keeps_host_and_subsets() {
    let rule = json!({
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {"host": "web.ns.svc.cluster.local", "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "all"}
        ]}
    });
    let spec = destination_rule(&rule).expect("converts");
    assert_eq!(spec.host, "web.ns.svc.cluster.local");
    let names: Vec<&str> = spec.subsets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["v1", "all"]);
    assert_eq!(spec.subsets[0].labels["version"], "v1");
    assert!(spec.subsets[1].labels.is_empty(), "no labels: every pod");
}

#[test]
fn malformed_subsets_are_named() {
    for (subsets, field) in [
        (
            json!([{"labels": {"version": "v1"}}]),
            "spec.subsets[0].name",
        ),
        (
            json!([{"name": "v1", "labels": {"version": 1}}]),
            "spec.subsets[0].labels.version",
        ),
        (
            json!([{"name": "v1", "labels": ["version"]}]),
            "spec.subsets[0].labels",
        ),
        (json!({"name": "v1"}), "spec.subsets: expected a list"),
    ] {
        let rule = json!({"metadata": {"name": "web", "namespace": "ns"},
                          "spec": {"host": "web", "subsets": subsets}});
        let err = destination_rule(&rule).expect_err("rejected").to_string();
        assert!(
            err.starts_with("DestinationRule ns/web: ") && err.contains(field),
            "{err}"
        );
    }
}

#[test]
fn pod_keeps_labels_and_address() {
    let pod_json = |status: Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {"version": "v1"}},
            "status": status
        }))
        .expect("valid Pod json")
    };
    let running = pod(&pod_json(json!({"podIP": "10.244.1.7"}))).expect("converts");
    assert_eq!(running.key, ObjectKey::new("ns", "web-1"));
    assert_eq!(running.ip, Some("10.244.1.7".parse().unwrap()));
    assert_eq!(running.labels["version"], "v1");
    let pending = pod(&pod_json(json!({"phase": "Pending"}))).expect("converts");
    assert_eq!(pending.ip, None, "not started yet: no address");
    let err = pod(&pod_json(json!({"podIP": "10.244.1"}))).expect_err("rejected");
    assert!(
        err.to_string().contains("status.podIP \"10.244.1\""),
        "{err}"
    );
}

#[test]
fn node_keeps_parsable_addresses() {
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": "edge-1"},
        "status": {"addresses": [
            {"type": "InternalIP", "address": "192.0.2.5"},
            {"type": "Hostname", "address": "edge-1"}
        ]}
    }))
    .expect("valid node");
    let spec = node(&n).expect("converts");
    assert_eq!(spec.name, "edge-1");
    assert_eq!(spec.addresses.len(), 1);
}

#[test]
fn node_pod_ranges_come_from_pod_cidrs_else_pod_cidr() {
    let ranges = |spec: Value| {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": spec}))
            .expect("valid node");
        let converted = node(&n).expect("converts");
        converted
            .pod_cidrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ranges(json!({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]})),
        ["10.244.1.0/24", "fd00:1::/64"]
    );
    assert_eq!(
        ranges(json!({"podCIDR": "10.244.2.0/24"})),
        ["10.244.2.0/24"]
    );
    assert_eq!(
        ranges(json!({"podCIDR": "not a range"})),
        Vec::<String>::new()
    );
    assert!(ranges(json!({})).is_empty());
}

/// kube-apiserver refuses these endpoint addresses; a manifests directory must not slip them in.
#[test]
fn loopback_link_local_unspecified_and_multicast_endpoints_are_refused() {
    for ip in [
        "127.0.0.1",
        "::1",
        "169.254.1.1",
        "fe80::1",
        "0.0.0.0",
        "224.0.0.1",
    ] {
        let e: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"port": 80}]}]
        }))
        .expect("valid endpoints");
        let err = endpoints(&e).expect_err(ip).to_string();
        assert!(
            err.contains("which the API server refuses too"),
            "{ip}: {err}"
        );
    }
}
