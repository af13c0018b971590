//! Pure decisions about a routed connection: does it need its HTTP request head read, and which
//! backends may it not use?

use std::net::SocketAddr;

use edgemesh_model::{Frontend, HashKey, LbPolicy, Service, ServicePort};

/// `appProtocol` values that mean HTTP/1 or cleartext HTTP/2 (Kubernetes' standard names and
/// the IANA-style ones Istio accepts).
const HTTP_APP_PROTOCOLS: &[&str] = &["http", "http2", "kubernetes.io/h2c", "kubernetes.io/ws"];

/// Whether a port speaks cleartext HTTP, by Istio's naming convention (`http`, `http-*`) or by
/// its `appProtocol`. HTTPS/TLS ports are passthrough and never match.
pub fn is_http_port(port: &ServicePort) -> bool {
    let by_name = &*port.name == "http" || port.name.starts_with("http-");
    let by_app_protocol = port
        .app_protocol
        .as_deref()
        .is_some_and(|p| HTTP_APP_PROTOCOLS.contains(&p.to_ascii_lowercase().as_str()));
    by_name || by_app_protocol
}

/// The header whose value feeds the consistent hash, when the connection's request head must be
/// read to balance it: only for a header-hash policy on an HTTP port.
pub fn hash_header<'s>(service: &'s Service, port: &ServicePort) -> Option<&'s str> {
    match &service.lb_policy {
        LbPolicy::ConsistentHash(HashKey::HttpHeader(name)) if is_http_port(port) => Some(name),
        _ => None,
    }
}

/// Backends a connection that reached `service` at `frontend` must not use: with
/// `externalTrafficPolicy: Local`, for node-port and external-IP traffic, those of other nodes
/// (kube-proxy's rule; none left means the connection is refused).
pub fn foreign_backends(
    service: &Service,
    port: &ServicePort,
    frontend: &Frontend,
    local_node: Option<&str>,
) -> Vec<SocketAddr> {
    let Some(node) = local_node else {
        return Vec::new();
    };
    if !service.local_endpoints_only(frontend) {
        return Vec::new();
    }
    port.backends
        .iter()
        .filter(|b| !b.is_local_to(node))
        .map(|b| b.addr)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use edgemesh_model::{Protocol, ServiceKind, ServiceSpec};

    fn port(name: &str, app_protocol: Option<&str>) -> ServicePort {
        ServicePort {
            name: name.into(),
            protocol: Protocol::Tcp,
            port: 80,
            app_protocol: app_protocol.map(Into::into),
            backends: Vec::new().into(),
        }
    }

    #[test]
    fn http_ports_are_recognised_by_name_or_app_protocol() {
        let table = [
            ("http", None, true),
            ("http-web", None, true),
            ("http2", None, false),
            ("https", None, false),
            ("httpx", None, false),
            ("", None, false),
            ("web", Some("http"), true),
            ("web", Some("HTTP"), true),
            ("web", Some("kubernetes.io/h2c"), true),
            ("web", Some("kubernetes.io/ws"), true),
            ("web", Some("https"), false),
            ("web", Some("kubernetes.io/wss"), false),
            ("tcp", Some("tcp"), false),
        ];
        for (name, app, want) in table {
            assert_eq!(is_http_port(&port(name, app)), want, "{name} {app:?}");
        }
    }

    /// `ns/s` of `kind`, proxied, round robin, without ports or endpoints.
    fn service(kind: ServiceKind) -> Service {
        Service {
            spec: Arc::new(ServiceSpec {
                key: edgemesh_model::ObjectKey::new("ns", "s"),
                kind,
                ports: Vec::new(),
                has_proxy_name_label: false,
                session_affinity: None,
            }),
            proxy: edgemesh_model::ProxyDecision::Proxied,
            lb_policy: LbPolicy::RoundRobin,
            ports: vec![],
            endpoints: vec![],
        }
    }

    #[test]
    fn only_header_hash_on_http_ports_needs_the_head() {
        let mut svc = service(ServiceKind::Headless);
        let http = port("http", None);
        let tcp = port("tcp", None);
        assert_eq!(hash_header(&svc, &http), None);
        svc.lb_policy = LbPolicy::ConsistentHash(HashKey::SourceIp);
        assert_eq!(hash_header(&svc, &http), None);
        svc.lb_policy = LbPolicy::ConsistentHash(HashKey::HttpHeader("x-user".into()));
        assert_eq!(hash_header(&svc, &http), Some("x-user"));
        assert_eq!(hash_header(&svc, &tcp), None);
    }

    #[test]
    fn local_policy_excludes_other_nodes_backends_for_external_traffic_only() {
        use edgemesh_model::{Backend, Exposure, ExternalTrafficPolicy, Frontend};
        let backend = |last: u8, node: Option<&str>| Backend {
            addr: SocketAddr::from(([192, 0, 2, last], 8080)),
            node_name: node.map(Into::into),
        };
        let mut http = port("http", None);
        http.backends = vec![
            backend(11, Some("here")),
            backend(12, Some("there")),
            backend(13, None),
        ]
        .into();
        let cluster_ip = Frontend {
            ip: [10, 96, 0, 1].into(),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let external_ip = Frontend {
            ip: [198, 51, 100, 10].into(),
            ..cluster_ip
        };
        let node_port = Frontend::node_port(cluster_ip.ip, 30080, Protocol::Tcp);
        let exposed = |policy| {
            service(ServiceKind::Exposed {
                cluster_ips: vec![cluster_ip.ip],
                exposure: Box::new(Exposure {
                    external_ips: vec![external_ip.ip],
                    external_traffic_policy: policy,
                    ..Exposure::default()
                }),
            })
        };
        let there: Vec<SocketAddr> = vec![backend(12, None).addr];
        use ExternalTrafficPolicy::{Cluster, Local};
        #[rustfmt::skip]
        let table = [
            (Local, node_port, Some("here"), there.clone()),
            (Local, external_ip, Some("here"), there.clone()),
            (Local, cluster_ip, Some("here"), vec![]),
            (Cluster, node_port, Some("here"), vec![]),
            // Without a node name nothing is foreign.
            (Local, node_port, None, vec![]),
        ];
        for (policy, frontend, node, want) in table {
            let got = foreign_backends(&exposed(policy), &http, &frontend, node);
            assert_eq!(got, want, "{policy:?} {frontend:?} {node:?}");
        }
    }
}
