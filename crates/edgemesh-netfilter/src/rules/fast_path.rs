//! The kernel fast path: which frontends the kernel can balance by itself (pure).
//!
//! A TCP service port whose backends are all reachable from this node without the tunnel, and
//! whose policy is round robin or random, needs nothing from the userspace proxy: a DNAT with
//! `numgen` does the same per-connection choice at a fraction of the cost (no second socket, no
//! copy, no wake-up per packet). Everything else — consistent hash (source IP or HTTP header),
//! ClientIP affinity, endpoints on other nodes (tunnel), UDP, no endpoints (the proxy refuses
//! fast) — stays with the proxy. Connections are masqueraded like the proxy's own, so the backend
//! sees the node's address either way and replies always come back through this node.

use std::net::SocketAddr;
use std::sync::Arc;

use edgemesh_model::{Backend, Frontend, LbPolicy, Protocol, Service, ServicePort};

/// Enables the fast path for frontends whose backends run on `local_node` (or carry no node
/// name: manifests of an offline site, which the agent dials directly anyway).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FastPathOptions {
    pub local_node: Option<Arc<str>>,
}

/// How the kernel spreads new connections over the backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Spread {
    /// `numgen inc`: one counter per group of frontends with as many backends, so one service's
    /// consecutive connections alternate exactly while it is the group's only traffic, and spread
    /// evenly in any case.
    RoundRobin,
    /// `numgen random`.
    Random,
}

/// Frontends DNATed by one rule: same spread, same number of backends. `numgen` takes a
/// constant modulus, so each group has its own rule and map; with one backend there is no choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FastGroup {
    pub spread: Spread,
    pub backends: usize,
}

impl FastRoute {
    pub fn group(&self) -> FastGroup {
        let spread = match self.backends.len() {
            1 => Spread::RoundRobin,
            _ => self.spread,
        };
        FastGroup {
            spread,
            backends: self.backends.len(),
        }
    }
}

/// A frontend the kernel DNATs to its backends (its `namespace/name:port` label is the
/// frontend's in [`RuleSet::elements`](crate::RuleSet): not copied here, the nft backend keeps
/// the applied rules, 100,000 of them at scale).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FastRoute {
    pub spread: Spread,
    pub backends: Vec<SocketAddr>,
}

/// The kernel route for `frontend`, or `None` when the proxy must handle it.
pub fn fast_route(
    frontend: &Frontend,
    service: &Service,
    port: &ServicePort,
    opts: &FastPathOptions,
) -> Option<FastRoute> {
    if frontend.protocol != Protocol::Tcp || service.session_affinity().is_some() {
        return None;
    }
    let spread = match service.lb_policy {
        LbPolicy::RoundRobin => Spread::RoundRobin,
        LbPolicy::Random => Spread::Random,
        LbPolicy::ConsistentHash(_) => return None,
    };
    // A DNAT cannot cross address families, and endpoints on other nodes go through the tunnel.
    let local = |b: &Backend| match opts.local_node.as_deref() {
        Some(node) => b.is_local_to(node),
        None => b.node_name.is_none(),
    };
    let usable = |b: &Backend| local(b) && b.addr.is_ipv4() == frontend.ip.is_ipv4();
    let backends = &port.backends;
    if backends.is_empty() || !backends.iter().all(usable) {
        return None;
    }
    Some(FastRoute {
        spread,
        backends: backends.iter().map(|b| b.addr).collect(),
    })
}

#[cfg(test)]
mod tests;
