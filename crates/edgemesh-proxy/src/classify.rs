//! Pure decisions about a routed connection: does it need its HTTP request head read?

use edgemesh_model::{HashKey, LbPolicy, Service, ServicePort};

/// `appProtocol` values that mean HTTP/1 or cleartext HTTP/2 (Kubernetes' standard names and
/// the IANA-style ones Istio accepts).
const HTTP_APP_PROTOCOLS: &[&str] = &["http", "http2", "kubernetes.io/h2c", "kubernetes.io/ws"];

/// Whether a port speaks cleartext HTTP, by Istio's naming convention (`http`, `http-*`) or by
/// its `appProtocol`. HTTPS/TLS ports are passthrough and never match.
pub fn is_http_port(port: &ServicePort) -> bool {
    let by_name = port.name == "http" || port.name.starts_with("http-");
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

#[cfg(test)]
mod tests {
    use super::*;
    use edgemesh_model::Protocol;

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

    #[test]
    fn only_header_hash_on_http_ports_needs_the_head() {
        let mut svc = Service {
            key: edgemesh_model::ObjectKey::new("ns", "s"),
            kind: edgemesh_model::ServiceKind::Headless,
            proxy: edgemesh_model::ProxyDecision::Proxied,
            lb_policy: LbPolicy::RoundRobin,
            session_affinity: None,
            ports: vec![],
            endpoints: vec![],
        };
        let http = port("http", None);
        let tcp = port("tcp", None);
        assert_eq!(hash_header(&svc, &http), None);
        svc.lb_policy = LbPolicy::ConsistentHash(HashKey::SourceIp);
        assert_eq!(hash_header(&svc, &http), None);
        svc.lb_policy = LbPolicy::ConsistentHash(HashKey::HttpHeader("x-user".into()));
        assert_eq!(hash_header(&svc, &http), Some("x-user"));
        assert_eq!(hash_header(&svc, &tcp), None);
    }
}
