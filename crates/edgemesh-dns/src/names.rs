//! Where a query name belongs: a shape under the cluster domain, a reverse name, or elsewhere.
//!
//! Pure parsing of names; no Snapshot here.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::rr::Name;

/// A name under the cluster domain, by shape (labels are lowercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterName {
    /// `<domain>` itself.
    Apex,
    /// `svc.<domain>`, `pod.<domain>`: zones that exist but hold no records themselves.
    EmptyZone,
    /// `ns.svc.<domain>`.
    Namespace { ns: String },
    /// `svc.ns.svc.<domain>`.
    Service { ns: String, svc: String },
    /// `host.svc.ns.svc.<domain>`: an endpoint by hostname or dashed IP.
    Endpoint {
        ns: String,
        svc: String,
        host: String,
    },
    /// `_port._proto.svc.ns.svc.<domain>`.
    Srv {
        ns: String,
        svc: String,
        port: String,
        proto: String,
    },
    /// `a-b-c-d.ns.pod.<domain>` (kube-dns "pods insecure").
    Pod { ip: Option<IpAddr> },
    /// Any other name under the domain: it does not exist.
    Unknown,
}

/// The class of a query name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Cluster(ClusterName),
    /// A full-length `in-addr.arpa` / `ip6.arpa` name.
    Reverse(IpAddr),
    Elsewhere,
}

/// Classifies `qname` (lowercase, fully qualified) against `domain` (lowercase, fully qualified).
pub fn classify(qname: &Name, domain: &Name) -> Target {
    if domain.zone_of(qname) {
        return Target::Cluster(cluster_name(qname, domain));
    }
    match qname.parse_arpa_name() {
        Ok(net) if net.prefix_len() == net.max_prefix_len() => Target::Reverse(net.addr()),
        _ => Target::Elsewhere,
    }
}

fn cluster_name(qname: &Name, domain: &Name) -> ClusterName {
    let relative = usize::from(qname.num_labels().saturating_sub(domain.num_labels()));
    // Labels from the domain outwards: `web.ns.svc` gives ["svc", "ns", "web"].
    let labels: Vec<String> = qname
        .iter()
        .take(relative)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .rev()
        .collect();
    let l: Vec<&str> = labels.iter().map(String::as_str).collect();
    let own = |s: &str| s.to_string();
    match l.as_slice() {
        [] => ClusterName::Apex,
        ["svc"] | ["pod"] => ClusterName::EmptyZone,
        ["svc", ns] => ClusterName::Namespace { ns: own(ns) },
        ["svc", ns, svc] => ClusterName::Service {
            ns: own(ns),
            svc: own(svc),
        },
        ["svc", ns, svc, host] if !host.starts_with('_') => ClusterName::Endpoint {
            ns: own(ns),
            svc: own(svc),
            host: own(host),
        },
        ["svc", ns, svc, proto, port] if proto.starts_with('_') && port.starts_with('_') => {
            ClusterName::Srv {
                ns: own(ns),
                svc: own(svc),
                port: port[1..].to_string(),
                proto: proto[1..].to_string(),
            }
        }
        ["pod", _ns, dashed] => ClusterName::Pod {
            ip: ip_from_dashed(dashed),
        },
        _ => ClusterName::Unknown,
    }
}

/// `10-1-2-3` → 10.1.2.3; `2001-db8--1` → 2001:db8::1.
pub fn ip_from_dashed(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label.replace('-', ":").parse().ok()
}

/// The inverse of [`ip_from_dashed`], as a DNS label.
pub fn dashed_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn cluster(q: &str) -> ClusterName {
        match classify(&name(q), &name("cluster.local.")) {
            Target::Cluster(c) => c,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn cluster_shapes() {
        let svc = |ns: &str, s: &str| ClusterName::Service {
            ns: ns.into(),
            svc: s.into(),
        };
        assert_eq!(cluster("cluster.local."), ClusterName::Apex);
        assert_eq!(cluster("svc.cluster.local."), ClusterName::EmptyZone);
        assert_eq!(
            cluster("ns.svc.cluster.local."),
            ClusterName::Namespace { ns: "ns".into() }
        );
        assert_eq!(cluster("web.ns.svc.cluster.local."), svc("ns", "web"));
        assert_eq!(
            cluster("db-0.db.ns.svc.cluster.local."),
            ClusterName::Endpoint {
                ns: "ns".into(),
                svc: "db".into(),
                host: "db-0".into()
            }
        );
        assert_eq!(
            cluster("_http._tcp.web.ns.svc.cluster.local."),
            ClusterName::Srv {
                ns: "ns".into(),
                svc: "web".into(),
                port: "http".into(),
                proto: "tcp".into()
            }
        );
        assert_eq!(
            cluster("10-1-2-3.ns.pod.cluster.local."),
            ClusterName::Pod {
                ip: Some("10.1.2.3".parse().unwrap())
            }
        );
        for unknown in [
            "x.cluster.local.",
            "a.b.c.ns.svc.cluster.local.",
            "_http.web.ns.svc.cluster.local.",
            "x._tcp.web.ns.svc.cluster.local.",
        ] {
            assert_eq!(cluster(unknown), ClusterName::Unknown, "{unknown}");
        }
    }

    #[test]
    fn reverse_and_elsewhere() {
        let d = name("cluster.local.");
        assert_eq!(
            classify(&name("10.0.96.10.in-addr.arpa."), &d),
            Target::Reverse("10.96.0.10".parse().unwrap())
        );
        assert_eq!(
            classify(&name("0.96.10.in-addr.arpa."), &d),
            Target::Elsewhere
        );
        assert_eq!(classify(&name("example.com."), &d), Target::Elsewhere);
        assert_eq!(classify(&name("local."), &d), Target::Elsewhere);
        assert_eq!(classify(&name("."), &d), Target::Elsewhere);
    }

    #[test]
    fn dashed_ips_round_trip() {
        for ip in ["10.1.2.3", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_from_dashed(&dashed_ip(ip)), Some(ip));
        }
        assert_eq!(ip_from_dashed("web"), None);
    }
}
