//! Pure value rules: `Ok(())`, or `Err(what is allowed)`.

use std::net::{IpAddr, SocketAddr};

type Rule = Result<(), &'static str>;

fn require(ok: bool, allowed: &'static str) -> Rule {
    if ok { Ok(()) } else { Err(allowed) }
}

/// `http://host[:port][/path]` or `https://…` (a bare `host:port` is ambiguous about TLS).
pub fn http_url(value: &str) -> Rule {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or_default());
    let ok = host.is_some_and(|h| !h.is_empty()) && !value.chars().any(char::is_whitespace);
    require(
        ok,
        "an http:// or https:// URL, e.g. https://192.0.2.1:6443",
    )
}

/// A Linux interface name: 1 to 15 bytes (IFNAMSIZ - 1), no `/`, no whitespace, not `.`/`..`.
pub fn interface_name(value: &str) -> Rule {
    let ok = (1..=15).contains(&value.len())
        && !value.contains('/')
        && !value.chars().any(char::is_whitespace)
        && value != "."
        && value != "..";
    require(
        ok,
        "an interface name of 1 to 15 characters without '/' or whitespace",
    )
}

/// `IP` or `IP:port` (`[v6]:port` for IPv6).
pub fn upstream_server(value: &str) -> Rule {
    let ok =
        value.parse::<IpAddr>().is_ok() || value.parse::<SocketAddr>().is_ok_and(|a| a.port() != 0);
    require(
        ok,
        "an IP address or IP:port, e.g. 10.96.0.10 or 10.96.0.10:53",
    )
}

/// An IP network such as `10.244.0.0/16`.
pub fn cidr(value: &str) -> Rule {
    require(
        value.parse::<edgemesh_model::Cidr>().is_ok(),
        "an IP network, e.g. 10.244.0.0/16",
    )
}

pub fn ip_address(value: &str) -> Rule {
    require(
        value.parse::<IpAddr>().is_ok(),
        "an IP address, e.g. 203.0.113.7",
    )
}

/// A node name as EdgeMesh takes it: any non-empty word (its HA guide names relays `R1`, `R2`;
/// Go derives a peer id from whatever is written). Whitespace is refused: it is EdgeMesh's
/// unedited placeholder `<your relay node name1>`, never a node.
pub fn node_name(value: &str) -> Rule {
    let ok = !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    require(ok, "a node name (no spaces), e.g. edge-node-1")
}

/// A DNS domain such as `cluster.local` (a trailing dot is allowed).
pub fn dns_domain(value: &str) -> Rule {
    let name = value.strip_suffix('.').unwrap_or(value);
    require(dns_name(name), "a DNS domain, e.g. cluster.local")
}

/// Labels of 1..=63 letters, digits and inner hyphens.
fn dns_name(name: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

/// DNS TTLs are 31-bit (RFC 2181 §8).
pub fn ttl(value: &i64) -> Rule {
    require(
        (0..=i64::from(i32::MAX)).contains(value),
        "0..=2147483647 seconds",
    )
}

/// The bounded-load factor of the consistent-hash ring.
pub fn load_factor(value: &f64) -> Rule {
    require(value.is_finite() && *value >= 1.0, "a number >= 1.0")
}

pub fn non_empty_path(value: &str) -> Rule {
    require(!value.trim().is_empty(), "a file path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = [
            "http://127.0.0.1:10550",
            "https://m:6443",
            "https://m/prefix",
        ];
        let bad = [
            "",
            "127.0.0.1:6443",
            "ftp://m",
            "http://",
            "https:// m",
            "http:///x",
        ];
        for v in ok {
            assert_eq!(http_url(v), Ok(()), "{v}");
        }
        for v in bad {
            assert!(http_url(v).is_err(), "{v}");
        }
    }

    #[test]
    fn upstream_servers() {
        let ok = [
            "10.96.0.10",
            "1.1.1.1:53",
            "2001:db8::1",
            "[2001:db8::1]:5353",
        ];
        let bad = [
            "",
            "dns.example",
            "1.1.1.1:",
            "1.1.1.1:0",
            "1.1.1.1:70000",
            "1.1.1",
        ];
        for v in ok {
            assert_eq!(upstream_server(v), Ok(()), "{v}");
        }
        for v in bad {
            assert!(upstream_server(v).is_err(), "{v}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(node_name("ke-edge1"), Ok(()));
        assert_eq!(node_name("node.example.com"), Ok(()));
        assert_eq!(node_name("R1"), Ok(()));
        for bad in ["", " ", "a b", "<your relay node name1>"] {
            assert!(node_name(bad).is_err(), "{bad}");
        }
        assert_eq!(cidr("10.244.0.0/16"), Ok(()));
        assert!(cidr("10.244.0.0").is_err() && cidr("10.0.0.0/40").is_err());
        assert_eq!(dns_domain("cluster.local"), Ok(()));
        assert_eq!(dns_domain("cluster.local."), Ok(()));
        assert_eq!(dns_domain("Cluster.Local"), Ok(()));
        for bad in ["", ".", "a..b", "a b", "-x.local"] {
            assert!(dns_domain(bad).is_err(), "{bad}");
        }
        assert_eq!(interface_name("edgemesh0"), Ok(()));
        for bad in ["", "a/b", "sixteen-chars-xx", "a b", ".."] {
            assert!(interface_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(ttl(&0), Ok(()));
        assert!(ttl(&-1).is_err());
        assert!(ttl(&(1 << 31)).is_err());
        assert_eq!(load_factor(&1.0), Ok(()));
        for bad in [0.99, f64::NAN, f64::INFINITY] {
            assert!(load_factor(&bad).is_err(), "{bad}");
        }
    }
}
