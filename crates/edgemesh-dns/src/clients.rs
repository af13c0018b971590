//! Who may ask: the decision behind [`crate::ClientPolicy`], over the Snapshot and the host's
//! interface networks.
//!
//! The node-local DNS must not be an open resolver for the node's LAN: a LAN host that routes
//! 169.254.96.16 via the node (Linux accepts it on any interface) is refused. Pods are answered
//! however they are addressed: by the Node's `podCIDRs`, and otherwise by not being on the
//! node's own LAN — on KubeEdge edge nodes pods often sit on a docker or CNI bridge whose
//! addresses are not the Node's `podCIDR`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgemesh_model::{Cidr, Snapshot};

use crate::config::ClientPolicy;

/// Whether `source` may query a server listening on `listen`; `local_nets` are the networks of
/// the host's interfaces. In order:
/// 1. loopback, the listen addresses (the node's own queries come from them), the Node's
///    addresses and `podCIDRs`: answered;
/// 2. with `allowedClients` set, its networks are answered and everyone else is refused;
/// 3. a client on the node's own LAN (a network of an interface that carries one of the Node's
///    addresses): refused;
/// 4. anyone else (pods on bridges, routed clients): answered. Without a Node object nothing
///    tells the LAN apart, and everyone is answered.
pub fn allowed(
    policy: &ClientPolicy,
    snapshot: &Snapshot,
    listen: &[IpAddr],
    local_nets: &[Cidr],
    source: IpAddr,
) -> bool {
    // An IPv4 client on a dual-stack socket appears as `::ffff:a.b.c.d`.
    let source = source.to_canonical();
    let node = policy.node.as_ref().and_then(|n| snapshot.nodes.get(n));
    let node_ips: Vec<IpAddr> = node
        .map(|n| n.addresses.iter().map(|a| a.ip).collect())
        .unwrap_or_default();
    let own = source.is_loopback() || listen.contains(&source) || node_ips.contains(&source);
    let pod = node.is_some_and(|n| n.pod_cidrs.iter().any(|net| net.contains(source)));
    if own || pod {
        return true;
    }
    if !policy.allowed.is_empty() {
        return policy.allowed.iter().any(|net| net.contains(source));
    }
    let node_lan = local_nets
        .iter()
        .filter(|net| node_ips.iter().any(|ip| net.contains(*ip)))
        .any(|net| net.contains(source));
    !node_lan
}

/// How long the host's interface networks are reused before they are read again (DHCP may
/// move the node to another network).
const LOCAL_NETS_TTL: Duration = Duration::from_secs(30);

/// The host's interface networks, read again at most every [`LOCAL_NETS_TTL`].
#[derive(Debug, Default)]
pub struct LocalNets(Mutex<Option<(Instant, Arc<[Cidr]>)>>);

impl LocalNets {
    pub fn get(&self) -> Arc<[Cidr]> {
        let mut cached = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*cached {
            Some((read, nets)) if read.elapsed() < LOCAL_NETS_TTL => Arc::clone(nets),
            _ => {
                let nets: Arc<[Cidr]> = interface_networks().into();
                *cached = Some((Instant::now(), Arc::clone(&nets)));
                nets
            }
        }
    }
}

/// Every interface address with its netmask, as a network.
fn interface_networks() -> Vec<Cidr> {
    let Ok(nets) = edgemesh_host::interface_networks() else {
        return Vec::new();
    };
    nets.into_iter()
        .filter_map(|(ip, prefix)| Cidr::new(ip, prefix))
        .collect()
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
    fn node_pods_and_allow_list_not_the_lan() {
        let listen = ["169.254.96.16".parse().unwrap()];
        let nets: Vec<Cidr> = ["198.51.100.1/24", "172.17.0.1/16", "127.0.0.1/8"]
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        let node = |allowed: &[&str]| ClientPolicy {
            node: Some("n1".into()),
            allowed: allowed.iter().map(|c| c.parse().unwrap()).collect(),
        };
        let with_pods = snapshot(&["10.244.1.0/24"]);
        let without_pods = snapshot(&[]);
        let empty = Snapshot::empty();
        let cases = [
            (node(&[]), &with_pods, "127.0.0.1", true),
            (node(&[]), &with_pods, "169.254.96.16", true),
            (node(&[]), &with_pods, "198.51.100.1", true),
            (node(&[]), &with_pods, "10.244.1.9", true),
            (node(&[]), &with_pods, "::ffff:10.244.1.9", true),
            // A LAN neighbour, with or without pod ranges known.
            (node(&[]), &with_pods, "198.51.100.7", false),
            (node(&[]), &without_pods, "198.51.100.7", false),
            // A pod on a docker bridge that is not the Node's podCIDR (KubeEdge edge nodes).
            (node(&[]), &with_pods, "172.17.0.5", true),
            (node(&[]), &without_pods, "172.17.0.5", true),
            // The allow-list makes it strict.
            (node(&["198.51.100.0/24"]), &with_pods, "198.51.100.7", true),
            (node(&["10.0.0.0/8"]), &without_pods, "172.17.0.5", false),
            (node(&["10.0.0.0/8"]), &without_pods, "10.1.2.3", true),
            // No Node object: the LAN cannot be told apart.
            (node(&[]), &empty, "198.51.100.7", true),
            (ClientPolicy::default(), &with_pods, "198.51.100.7", true),
        ];
        for (i, (policy, snapshot, source, want)) in cases.into_iter().enumerate() {
            let got = allowed(&policy, snapshot, &listen, &nets, source.parse().unwrap());
            assert_eq!(got, want, "case {i}: {source}");
        }
    }

    #[test]
    fn interface_networks_include_loopback() {
        let nets = interface_networks();
        assert!(
            nets.iter()
                .any(|n| n.contains("127.0.0.1".parse().unwrap())),
            "{nets:?}"
        );
    }
}
