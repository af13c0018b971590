//! Who may ask: the decision behind [`crate::ClientPolicy`], pure over the Snapshot.

use std::net::IpAddr;

use edgemesh_model::Snapshot;

use crate::config::ClientPolicy;

/// Whether `source` may query a server listening on `listen`. Allowed: loopback, the server's
/// own addresses (what the node itself uses as source towards them), the allow-list, this node's
/// addresses and pod ranges from its Node object. When the Snapshot does not say which addresses
/// are this node's pods (no Node object, or one without `podCIDRs`) and no allow-list is set,
/// every client is answered, as before: refusing pods would break the node.
pub fn allowed(
    policy: &ClientPolicy,
    snapshot: &Snapshot,
    listen: &[IpAddr],
    source: IpAddr,
) -> bool {
    let source = canonical(source);
    if source.is_loopback() || listen.contains(&source) {
        return true;
    }
    if policy.allowed.iter().any(|net| net.contains(source)) {
        return true;
    }
    let node = policy.node.as_ref().and_then(|n| snapshot.nodes.get(n));
    match node {
        Some(node) if !node.pod_cidrs.is_empty() => {
            node.addresses.iter().any(|a| a.ip == source)
                || node.pod_cidrs.iter().any(|net| net.contains(source))
        }
        _ => policy.allowed.is_empty(),
    }
}

/// An IPv4 client on a dual-stack socket appears as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use edgemesh_model::{NodeAddress, NodeSpec};

    use super::*;

    fn snapshot(pod_cidrs: &[&str]) -> Snapshot {
        let mut snapshot = Snapshot::empty();
        let node = NodeSpec {
            name: "n1".into(),
            addresses: vec![NodeAddress {
                kind: "InternalIP".into(),
                ip: "198.51.100.1".parse().unwrap(),
            }],
            pod_cidrs: pod_cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        };
        snapshot.nodes.insert("n1".into(), node);
        snapshot
    }

    #[test]
    fn node_pods_and_allow_list_only() {
        let listen = ["169.254.96.16".parse().unwrap()];
        let node = |allowed: &[&str]| ClientPolicy {
            node: Some("n1".into()),
            allowed: allowed.iter().map(|c| c.parse().unwrap()).collect(),
        };
        let with_pods = snapshot(&["10.244.1.0/24"]);
        let without_pods = snapshot(&[]);
        let cases = [
            (node(&[]), &with_pods, "127.0.0.1", true),
            (node(&[]), &with_pods, "169.254.96.16", true),
            (node(&[]), &with_pods, "198.51.100.1", true),
            (node(&[]), &with_pods, "10.244.1.9", true),
            (node(&[]), &with_pods, "::ffff:10.244.1.9", true),
            (node(&[]), &with_pods, "198.51.100.7", false),
            (node(&[]), &with_pods, "10.244.2.9", false),
            (node(&["198.51.100.0/24"]), &with_pods, "198.51.100.7", true),
            // Pods unknown: everyone, unless an allow-list says who.
            (node(&[]), &without_pods, "198.51.100.7", true),
            (node(&["10.0.0.0/8"]), &without_pods, "198.51.100.7", false),
            (node(&["10.0.0.0/8"]), &without_pods, "10.1.2.3", true),
            (ClientPolicy::default(), &with_pods, "198.51.100.7", true),
        ];
        for (i, (policy, snapshot, source, want)) in cases.into_iter().enumerate() {
            let got = allowed(&policy, snapshot, &listen, source.parse().unwrap());
            assert_eq!(got, want, "case {i}: {source}");
        }
    }
}
