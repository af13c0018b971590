//! Which destinations a remote agent may make this node dial: never an open proxy.
//!
//! A CONNECT is honoured only for a ready endpoint (backend) of a Service in *this* node's
//! snapshot that lives on *this* node, with the matching protocol; or, for SOCKS5-style access
//! to the node itself, a TCP port on one of the addresses of this node's Node object, as the
//! current snapshot has them (so a change of them applies at once). Not on any other address of
//! the host: a CNI bridge's gateway, a docker0, a VPN's are neither (issue #17, item 7).

use std::net::{IpAddr, SocketAddr};

use edgemesh_model::{Protocol, Snapshot};

/// The transport a CONNECT asks for, as spelled on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireProtocol {
    /// `tcp`: a byte stream.
    Tcp,
    /// `udp-framed`: datagrams with a 2-byte length prefix each (edgemesh's own; see `udp`).
    UdpFramed,
    /// `udp`: EdgeMesh's unframed UDP over a stream (see `udp::Framing::Unframed`), spoken with
    /// EdgeMesh's Go agents during a migration.
    UdpLegacy,
}

impl WireProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            WireProtocol::Tcp => "tcp",
            WireProtocol::UdpFramed => "udp-framed",
            WireProtocol::UdpLegacy => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<WireProtocol> {
        match s {
            "tcp" => Some(WireProtocol::Tcp),
            "udp-framed" => Some(WireProtocol::UdpFramed),
            "udp" => Some(WireProtocol::UdpLegacy),
            _ => None,
        }
    }

    fn model(self) -> Protocol {
        match self {
            WireProtocol::Tcp => Protocol::Tcp,
            WireProtocol::UdpFramed | WireProtocol::UdpLegacy => Protocol::Udp,
        }
    }
}

/// Why a CONNECT was accepted or refused (logged with the request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A ready endpoint of a service, on this node.
    Endpoint,
    /// A TCP port on an address of this node's Node object (SOCKS5 access by node name).
    NodeAddress,
    RefusedNotAnEndpoint,
    RefusedOtherNode,
}

impl Verdict {
    pub fn allowed(self) -> bool {
        matches!(self, Verdict::Endpoint | Verdict::NodeAddress)
    }

    /// Why a refused destination was refused, for the client ("… is {refusal}").
    pub fn refusal(self) -> &'static str {
        match self {
            Verdict::Endpoint | Verdict::NodeAddress => "allowed",
            Verdict::RefusedNotAnEndpoint => "not a ready endpoint of this node",
            Verdict::RefusedOtherNode => "an endpoint of another node",
        }
    }
}

/// Decides whether `me` may dial `target` over `protocol` for a remote agent.
pub fn check_destination(
    snapshot: &Snapshot,
    me: &str,
    protocol: WireProtocol,
    target: SocketAddr,
) -> Verdict {
    let mut elsewhere = false;
    let backends = snapshot
        .services
        .values()
        .flat_map(|s| s.ports.iter())
        .filter(|p| p.protocol == protocol.model())
        .flat_map(|p| p.backends.iter())
        .filter(|b| b.addr == target);
    for backend in backends {
        match backend.node_name.as_deref() {
            Some(node) if node == me => return Verdict::Endpoint,
            _ => elsewhere = true,
        }
    }
    if protocol == WireProtocol::Tcp && node_has_addr(snapshot, me, target.ip()) {
        return Verdict::NodeAddress;
    }
    if elsewhere {
        Verdict::RefusedOtherNode
    } else {
        Verdict::RefusedNotAnEndpoint
    }
}

fn node_has_addr(snapshot: &Snapshot, me: &str, ip: IpAddr) -> bool {
    snapshot
        .nodes
        .get(me)
        .is_some_and(|n| n.addresses.iter().any(|a| a.ip == ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot_file::{AllowedEndpoint, snapshot_from_endpoints, with_nodes};

    fn ep(proto: Protocol, addr: &str, node: &str) -> AllowedEndpoint {
        AllowedEndpoint {
            protocol: proto,
            addr: addr.parse().unwrap(),
            node: node.into(),
        }
    }

    #[test]
    fn only_ready_endpoints_on_this_node_are_dialled() {
        let snap = snapshot_from_endpoints(&[
            ep(Protocol::Tcp, "10.244.1.5:8080", "me"),
            ep(Protocol::Udp, "10.244.1.5:53", "me"),
            ep(Protocol::Tcp, "10.244.2.7:8080", "other"),
        ]);
        let snap = with_nodes(snap, &node("192.0.2.10"));
        use Verdict::*;
        use WireProtocol::*;
        let cases = [
            (Tcp, "10.244.1.5:8080", Endpoint),
            (UdpFramed, "10.244.1.5:53", Endpoint),
            (UdpFramed, "10.244.1.5:8080", RefusedNotAnEndpoint),
            (Tcp, "10.244.1.5:53", RefusedNotAnEndpoint),
            (Tcp, "10.244.1.5:22", RefusedNotAnEndpoint),
            (Tcp, "10.244.2.7:8080", RefusedOtherNode),
            (Tcp, "192.0.2.10:22", NodeAddress),
            (UdpFramed, "192.0.2.10:22", RefusedNotAnEndpoint),
            (UdpLegacy, "10.244.1.5:53", Endpoint),
            (UdpLegacy, "10.244.1.5:8080", RefusedNotAnEndpoint),
            (Tcp, "127.0.0.1:8080", RefusedNotAnEndpoint),
        ];
        for (proto, target, want) in cases {
            let got = check_destination(&snap, "me", proto, target.parse().unwrap());
            assert_eq!(got, want, "{proto:?} {target}");
        }
    }

    fn node(ip: &str) -> [(String, IpAddr); 1] {
        [("me".to_owned(), ip.parse().unwrap())]
    }

    /// Only the Node object's addresses, as the current snapshot has them: a host address that
    /// is not one (a CNI bridge's gateway) is refused, and a changed Node address applies with
    /// the next snapshot.
    #[test]
    fn node_addresses_come_from_the_node_object_as_it_is_now() {
        let tcp = |snap: &Snapshot, target: &str| {
            check_destination(snap, "me", WireProtocol::Tcp, target.parse().unwrap())
        };
        let before = with_nodes(Snapshot::default(), &node("192.0.2.10"));
        assert_eq!(tcp(&before, "192.0.2.10:22"), Verdict::NodeAddress);
        assert_eq!(
            tcp(&before, "10.244.2.1:22"),
            Verdict::RefusedNotAnEndpoint,
            "a CNI bridge gateway is not the node"
        );
        let after = with_nodes(Snapshot::default(), &node("192.0.2.20"));
        assert_eq!(tcp(&after, "192.0.2.10:22"), Verdict::RefusedNotAnEndpoint);
        assert_eq!(tcp(&after, "192.0.2.20:22"), Verdict::NodeAddress);
    }

    #[test]
    fn wire_names_round_trip() {
        for p in [
            WireProtocol::Tcp,
            WireProtocol::UdpFramed,
            WireProtocol::UdpLegacy,
        ] {
            assert_eq!(WireProtocol::parse(p.as_str()), Some(p));
        }
        assert_eq!(WireProtocol::parse("sctp"), None);
    }
}
