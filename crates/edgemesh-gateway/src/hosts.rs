//! Istio host names: `*`, `example.com`, `*.example.com`, and on a Gateway server the
//! `namespace/` prefix saying which namespaces' VirtualServices may bind to it.

/// One host pattern, lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`, held as `.example.com`: matches any name ending with it.
    Suffix(String),
}

impl HostPattern {
    pub fn parse(text: &str) -> Self {
        let text = text.trim().to_ascii_lowercase();
        if text == "*" {
            HostPattern::Any
        } else if let Some(rest) = text.strip_prefix('*') {
            HostPattern::Suffix(rest.to_string())
        } else {
            HostPattern::Exact(text)
        }
    }

    /// Whether a request for `host` (lower case, without port) is served by this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(name) => name == host,
            HostPattern::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }

    /// Whether some name matches both patterns (a VirtualService host against a server host).
    pub fn overlaps(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Any, _) | (_, HostPattern::Any) => true,
            (HostPattern::Exact(a), p) | (p, HostPattern::Exact(a)) => p.matches(a),
            (HostPattern::Suffix(a), HostPattern::Suffix(b)) => a.ends_with(b) || b.ends_with(a),
        }
    }
}

/// A Gateway server's `hosts` entry: which namespaces may bind, and the host pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHost {
    /// `None`: any namespace (no prefix, or `*/`).
    pub namespace: Option<String>,
    pub pattern: HostPattern,
}

impl ServerHost {
    /// Parses `ns/host`, `./host` (the Gateway's namespace), `*/host` or `host`.
    pub fn parse(text: &str, gateway_namespace: &str) -> Self {
        let (namespace, host) = match text.split_once('/') {
            Some(("*", host)) => (None, host),
            Some((".", host)) => (Some(gateway_namespace.to_string()), host),
            Some((namespace, host)) => (Some(namespace.to_string()), host),
            None => (None, text),
        };
        ServerHost {
            namespace,
            pattern: HostPattern::parse(host),
        }
    }

    /// Whether a VirtualService in `namespace` with host pattern `host` may bind here.
    pub fn admits(&self, namespace: &str, host: &HostPattern) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace) && self.pattern.overlaps(host)
    }
}

/// The host a request names (`Host` or `:authority`), lower case and without its port.
pub fn request_host(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                authority
            }
        })
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_istio_says() {
        assert!(HostPattern::parse("*").matches("anything"));
        assert!(HostPattern::parse("Hostname.org").matches("hostname.org"));
        assert!(!HostPattern::parse("hostname.org").matches("www.hostname.org"));
        let wild = HostPattern::parse("*.example.com");
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com"));
    }

    #[test]
    fn overlap_is_symmetric() {
        let cases = [
            ("*", "a.com", true),
            ("a.com", "a.com", true),
            ("a.com", "b.com", false),
            ("*.a.com", "x.a.com", true),
            ("*.a.com", "*.x.a.com", true),
            ("*.a.com", "*.b.com", false),
        ];
        for (a, b, want) in cases {
            let (a, b) = (HostPattern::parse(a), HostPattern::parse(b));
            assert_eq!(a.overlaps(&b), want, "{a:?} {b:?}");
            assert_eq!(b.overlaps(&a), want, "{b:?} {a:?}");
        }
    }

    #[test]
    fn server_hosts_restrict_namespaces() {
        let any = HostPattern::Any;
        assert!(ServerHost::parse("*", "gw").admits("default", &any));
        assert!(ServerHost::parse("./*", "gw").admits("gw", &any));
        assert!(!ServerHost::parse("./*", "gw").admits("default", &any));
        assert!(ServerHost::parse("default/*", "gw").admits("default", &any));
        assert!(ServerHost::parse("*/a.com", "gw").admits("x", &HostPattern::parse("a.com")));
    }

    #[test]
    fn request_host_drops_the_port() {
        assert_eq!(request_host("Example.com:8080"), "example.com");
        assert_eq!(request_host("example.com"), "example.com");
        assert_eq!(request_host("[::1]:80"), "::1");
        assert_eq!(request_host("192.0.2.1:23333"), "192.0.2.1");
    }
}
