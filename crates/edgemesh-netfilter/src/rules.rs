//! Snapshot → the rules the kernel should hold (pure).
//!
//! Rules are modelled as objects (the knftables idea): a handful of chains whose rules do not
//! depend on the number of services, plus one set of intercepted frontends. The renderers turn the
//! same objects into nft or iptables-restore text, and the [tracer](crate::trace) evaluates them, so
//! a fast test of the tracer is a test of what gets installed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use std::sync::Arc;

use edgemesh_model::{Frontend, Protocol, Service, ServicePort, Snapshot, SnapshotChanges};

mod fast_path;
pub use fast_path::{FastGroup, FastPathOptions, FastRoute, Spread, fast_route};

/// The transparent TCP proxy port of the agent (EdgeMesh's default).
pub const DEFAULT_TCP_PROXY_PORT: u16 = 40001;
/// The agent marks its own upstream sockets with this (`SO_MARK`); such packets are never
/// intercepted again. Bit 0x1000 is not used by kube-proxy (0x4000 masquerade, 0x8000 drop),
/// flannel (0x4000) or Calico (0xffff0000 by default).
pub const DEFAULT_BYPASS_MARK: MarkMatch = MarkMatch {
    value: 0x1000,
    mask: 0x1000,
};
/// Mark that sends intercepted UDP to the local routing table (TPROXY).
pub const DEFAULT_TPROXY_MARK: u32 = 0x2000;

/// `mark & mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MarkMatch {
    pub value: u32,
    pub mask: u32,
}

impl MarkMatch {
    pub fn matches(self, mark: u32) -> bool {
        mark & self.mask == self.value
    }
}

/// UDP interception through TPROXY. The policy route that brings marked packets to the local
/// stack (`ip rule add fwmark MARK lookup T; ip route add local default dev lo table T`) is not a
/// netfilter rule and is installed by the agent, not by this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpOptions {
    /// Port of the `IP_TRANSPARENT` UDP socket.
    pub port: u16,
    /// Mark set on intercepted UDP; the agent's `ip rule` matches it.
    pub mark: u32,
}

/// Inputs of rule generation that do not come from the Snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleOptions {
    /// TCP is REDIRECTed here; the proxy reads the target with `SO_ORIGINAL_DST`.
    pub tcp_port: u16,
    /// `None`: UDP services are not intercepted (UDP proxy unavailable: no policy route or no
    /// transparent socket).
    pub udp: Option<UdpOptions>,
    /// Packets of the agent's own upstream sockets.
    pub bypass_mark: MarkMatch,
    /// `Some`: TCP frontends the kernel can balance alone are DNATed in the kernel
    /// ([`fast_path`](self::fast_route)); only the nftables backend renders it, the others proxy
    /// those frontends like any other.
    pub fast_path: Option<FastPathOptions>,
}

impl Default for RuleOptions {
    fn default() -> Self {
        Self {
            tcp_port: DEFAULT_TCP_PROXY_PORT,
            udp: None,
            bypass_mark: DEFAULT_BYPASS_MARK,
            fast_path: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// `v4` or `v6`, whichever this family is.
    pub fn pick<T>(self, v4: T, v6: T) -> T {
        match self {
            IpFamily::V4 => v4,
            IpFamily::V6 => v6,
        }
    }
}

/// Where a packet enters: from containers/other hosts, or from the host itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    Prerouting,
    Output,
    /// Leaving the host (source NAT).
    Postrouting,
    /// Arriving for a local socket, after NAT (the proxy's hold chain).
    Input,
}

/// The base-chain type (nftables' `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainType {
    Nat,
    Filter,
    Route,
}

/// What a rule checks. Every rule has exactly one condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// The packet carries the bypass mark.
    Mark(MarkMatch),
    /// Destination address, protocol and port are an intercepted frontend of this family and
    /// protocol (the set lookup).
    Intercepted {
        family: IpFamily,
        protocol: Protocol,
    },
    /// Destination is a local address of this node other than loopback, and protocol and port
    /// are a node port of this family (nft `fib daddr type local`, iptables `addrtype LOCAL`).
    NodePort {
        family: IpFamily,
        protocol: Protocol,
    },
    /// Destination is a fast-path frontend of this family and group (its spread and number of
    /// backends): one DNAT map lookup keyed by destination, port and `numgen` slot.
    FastPath { family: IpFamily, group: FastGroup },
    /// The connection was DNATed from a fast-path frontend of this family (conntrack's
    /// original destination).
    FastPathReply { family: IpFamily },
    /// A connection's first SYN redirected to the proxy's TCP port; `listening`: a socket
    /// listens there (nft's `socket` lookup).
    ProxySyn { port: u16, listening: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave this chain (the next chain or kube-proxy decides).
    Return,
    /// nat: rewrite the destination to a local address and this port.
    Redirect { port: u16 },
    /// Hand the packet to a transparent socket on this port, and set the mark.
    Tproxy { port: u16, mark: u32 },
    /// Set the mark and go on (the route hook then re-routes through the local table).
    SetMark(u32),
    /// Skip conntrack, so no NAT chain (ours or kube-proxy's) ever sees the packet.
    NoTrack,
    /// nat: DNAT to one of the frontend's backends (the per-frontend fast-path chain).
    DnatToBackends,
    /// nat: rewrite the source to the outgoing interface's address.
    Masquerade,
    /// nat (input): rewrite the source to the address the packet is delivered to, the node's
    /// own, for connections that never reach postrouting.
    SnatToDestination,
    /// Drop the packet (the sender retries it).
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub when: Match,
    pub then: Action,
}

/// A base chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: &'static str,
    pub hook: Hook,
    pub chain_type: ChainType,
    pub priority: i32,
    pub rules: Vec<Rule>,
}

/// nat priority: ahead of kube-proxy's DNAT (dstnat, -100). The first NAT chain that binds a
/// connection's destination wins; later ones are not consulted for it.
pub const NAT_PRIORITY: i32 = -110;
/// Where TPROXY and the re-routing mark run (mangle).
pub const MANGLE_PRIORITY: i32 = -150;
/// Where conntrack is skipped for intercepted UDP (raw).
pub const RAW_PRIORITY: i32 = -300;
/// The proxy's hold chain (filter, after NAT).
pub const FILTER_PRIORITY: i32 = 0;
/// Source NAT of fast-path connections: ahead of kube-proxy's and the CNI's masquerade (100).
pub const SNAT_PRIORITY: i32 = 90;

/// Everything the kernel should hold for one Snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub options: RuleOptions,
    pub chains: Vec<Chain>,
    /// Intercepted frontends with a `namespace/name:port` label for comments and logs.
    pub elements: BTreeMap<Frontend, String>,
    /// Proxied frontends that these options cannot intercept (SCTP, UDP without TPROXY).
    pub not_intercepted: Vec<Frontend>,
    /// Intercepted frontends the kernel DNATs itself (a subset of `elements`: a backend that
    /// does not render the fast path still redirects them to the proxy).
    pub fast: BTreeMap<Frontend, FastRoute>,
}

impl RuleSet {
    /// Address elements (ClusterIPs and external IPs) of one family and protocol, in a stable
    /// order.
    pub fn elements_of(
        &self,
        family: IpFamily,
        protocol: Protocol,
    ) -> impl Iterator<Item = (&Frontend, &str)> {
        self.all_of(family, protocol)
            .filter(|(f, _)| !f.is_node_port())
    }

    /// Node-port elements of one family and protocol, in a stable order.
    pub fn node_ports_of(
        &self,
        family: IpFamily,
        protocol: Protocol,
    ) -> impl Iterator<Item = (&Frontend, &str)> {
        self.all_of(family, protocol)
            .filter(|(f, _)| f.is_node_port())
    }

    fn all_of(
        &self,
        family: IpFamily,
        protocol: Protocol,
    ) -> impl Iterator<Item = (&Frontend, &str)> {
        self.elements
            .iter()
            .filter(move |(f, _)| IpFamily::of(&f.ip) == family && f.protocol == protocol)
            .map(|(f, label)| (f, label.as_str()))
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    pub fn contains(&self, frontend: &Frontend) -> bool {
        self.elements.contains_key(frontend)
    }
}

/// The rules for `snapshot`: only its proxied frontends are intercepted.
pub fn desired_rules(snapshot: &Snapshot, opts: &RuleOptions) -> RuleSet {
    // Frontends come sorted: collected into vectors, the maps are bulk-built (no per-insert
    // search), which matters at 100,000 frontends per change.
    let mut elements = Vec::with_capacity(snapshot.frontend_count());
    let mut not_intercepted = Vec::new();
    let mut fast = Vec::new();
    for (frontend, port) in snapshot.proxied_frontends() {
        let Some((service, _)) = snapshot.route(&frontend) else {
            continue;
        };
        match place(opts, &frontend, service, port) {
            Placement::NotIntercepted => not_intercepted.push(frontend),
            Placement::Intercepted { label, kernel } => {
                if let Some(route) = kernel {
                    fast.push((frontend, route));
                }
                elements.push((frontend, label));
            }
        }
    }
    let fast = fast.into_iter().collect();
    RuleSet {
        options: opts.clone(),
        chains: chains(opts, &fast),
        elements: elements.into_iter().collect(),
        not_intercepted,
        fast,
    }
}

/// `rules`, the rules of `before`, turned into those of `snapshot` by redoing only the services
/// `changes` names: the same result as [`desired_rules`] when `snapshot` was built from `before`
/// (`changes.since == before.version`), at the cost of the changed services alone.
pub fn patch_rules(
    mut rules: RuleSet,
    before: &Snapshot,
    snapshot: &Snapshot,
    changes: &SnapshotChanges,
) -> RuleSet {
    let opts = rules.options.clone();
    // All removals first: a frontend may pass from one changed service to another.
    for key in &changes.services {
        let Some(service) = before.service(key) else {
            continue;
        };
        for (frontend, _) in owned_frontends(before, service) {
            rules.elements.remove(&frontend);
            rules.fast.remove(&frontend);
            rules.not_intercepted.retain(|f| *f != frontend);
        }
    }
    for key in &changes.services {
        let Some(service) = snapshot.service(key) else {
            continue;
        };
        for (frontend, index) in owned_frontends(snapshot, service) {
            match place(&opts, &frontend, service, &service.ports[index]) {
                Placement::NotIntercepted => rules.not_intercepted.push(frontend),
                Placement::Intercepted { label, kernel } => {
                    if let Some(route) = kernel {
                        rules.fast.insert(frontend, route);
                    }
                    rules.elements.insert(frontend, label);
                }
            }
        }
    }
    rules.not_intercepted.sort();
    rules.chains = chains(&opts, &rules.fast);
    rules
}

/// The frontends of `service` (one of `snapshot`'s) that route to it, with the index of their
/// port: none when it is not proxied, and not those another service won.
fn owned_frontends(snapshot: &Snapshot, service: &Arc<Service>) -> Vec<(Frontend, usize)> {
    service
        .frontends()
        .into_iter()
        .filter(|(frontend, _)| {
            snapshot
                .route(frontend)
                .is_some_and(|(owner, _)| Arc::ptr_eq(owner, service))
        })
        .collect()
}

/// What the rules do with one proxied frontend.
enum Placement {
    /// These options cannot hand it to the proxy (SCTP, UDP without TPROXY).
    NotIntercepted,
    /// Intercepted, labelled `namespace/name:port`; `kernel`: DNATed by the kernel itself.
    Intercepted {
        label: String,
        kernel: Option<FastRoute>,
    },
}

fn place(
    opts: &RuleOptions,
    frontend: &Frontend,
    service: &Service,
    port: &ServicePort,
) -> Placement {
    if !intercepts(opts, frontend) {
        return Placement::NotIntercepted;
    }
    // Node ports always go through the proxy: it maps nodeIP:nodePort back to the service
    // and applies externalTrafficPolicy (docs/proxier.md).
    let kernel = opts
        .fast_path
        .as_ref()
        .filter(|_| !frontend.is_node_port())
        .and_then(|fp| fast_route(frontend, service, port, fp));
    Placement::Intercepted {
        label: format!("{}:{}", service.key(), port.name),
        kernel,
    }
}

/// Whether these options can hand `frontend` to the proxy. A node port equal to the proxy's
/// own port is not intercepted: the proxy's listener must stay reachable as itself.
fn intercepts(opts: &RuleOptions, frontend: &Frontend) -> bool {
    let proxy_port = match frontend.protocol {
        Protocol::Tcp => Some(opts.tcp_port),
        Protocol::Udp => opts.udp.map(|udp| udp.port),
        Protocol::Sctp => None,
    };
    proxy_port.is_some_and(|port| !(frontend.is_node_port() && frontend.port == port))
}

/// The chains: their rules depend on the options only, never on the number of services.
fn chains(opts: &RuleOptions, fast: &BTreeMap<Frontend, FastRoute>) -> Vec<Chain> {
    use ChainType::{Filter, Nat, Route};
    use Hook::{Output, Prerouting};
    let redirect = Action::Redirect {
        port: opts.tcp_port,
    };
    let tcp = |name, hook| {
        let chain = base(name, hook, Nat, NAT_PRIORITY).with(opts, Protocol::Tcp, redirect);
        match opts.fast_path {
            Some(_) => chain.fast_path_first(fast),
            None => chain,
        }
    };
    let mut all = vec![
        tcp("nat_prerouting", Prerouting),
        tcp("nat_output", Output),
        hold_while_no_proxy(opts.tcp_port),
    ];
    if opts.fast_path.is_some() {
        all.push(masquerade_fast_path());
        all.push(snat_fast_path_delivered_here());
    }
    if let Some(udp) = opts.udp {
        let tproxy = Action::Tproxy {
            port: udp.port,
            mark: udp.mark,
        };
        let notrack = |name, hook| base(name, hook, Filter, RAW_PRIORITY);
        all.extend([
            notrack("udp_raw_prerouting", Prerouting).with(opts, Protocol::Udp, Action::NoTrack),
            notrack("udp_raw_output", Output).with(opts, Protocol::Udp, Action::NoTrack),
            base("udp_prerouting", Prerouting, Filter, MANGLE_PRIORITY).with(
                opts,
                Protocol::Udp,
                tproxy,
            ),
            base("udp_output", Output, Route, MANGLE_PRIORITY).with(
                opts,
                Protocol::Udp,
                Action::SetMark(udp.mark),
            ),
        ]);
    }
    all
}

fn base(name: &'static str, hook: Hook, chain_type: ChainType, priority: i32) -> Chain {
    Chain {
        name,
        hook,
        chain_type,
        priority,
        rules: Vec::new(),
    }
}

impl Chain {
    /// Five rules: bypass marked packets, act on intercepted v4 and v6 addresses, then on v4
    /// and v6 node ports (last, as kube-proxy's KUBE-NODEPORTS: an address frontend wins).
    fn with(mut self, opts: &RuleOptions, protocol: Protocol, action: Action) -> Self {
        let rule = |when| Rule { when, then: action };
        self.rules = vec![
            Rule {
                when: Match::Mark(opts.bypass_mark),
                then: Action::Return,
            },
            rule(Match::Intercepted {
                family: IpFamily::V4,
                protocol,
            }),
            rule(Match::Intercepted {
                family: IpFamily::V6,
                protocol,
            }),
            rule(Match::NodePort {
                family: IpFamily::V4,
                protocol,
            }),
            rule(Match::NodePort {
                family: IpFamily::V6,
                protocol,
            }),
        ];
        self
    }

    /// Fast-path frontends are DNATed before the rules that redirect to the proxy see them:
    /// one rule per family and group present, so the rule count follows the number of distinct
    /// endpoint counts, never the number of services.
    fn fast_path_first(mut self, fast: &BTreeMap<Frontend, FastRoute>) -> Self {
        let groups: std::collections::BTreeSet<(IpFamily, FastGroup)> = fast
            .iter()
            .map(|(f, route)| (IpFamily::of(&f.ip), route.group()))
            .collect();
        let rules = groups.into_iter().map(|(family, group)| Rule {
            when: Match::FastPath { family, group },
            then: Action::DnatToBackends,
        });
        self.rules.splice(1..1, rules);
        self
    }
}

/// While no process listens on the proxy port (an agent restarting), a redirected SYN is dropped
/// instead of refused: the client sends it again a second later and reaches the new agent, where
/// a refusal would have failed its connection. Only the nftables backend renders it (iptables
/// clients are refused in that gap); the rules stay while the agent is gone, so a node whose
/// agent is removed without `--cleanup` gives clients of proxied services a timeout, not a
/// refusal.
fn hold_while_no_proxy(port: u16) -> Chain {
    let syn = |listening| Match::ProxySyn { port, listening };
    let mut chain = base(
        "proxy_hold",
        Hook::Input,
        ChainType::Filter,
        FILTER_PRIORITY,
    );
    chain.rules = vec![
        Rule {
            when: syn(true),
            then: Action::Return,
        },
        Rule {
            when: syn(false),
            then: Action::Drop,
        },
    ];
    chain
}

/// Fast-path connections leave with the node's address, as the proxy's own would, so replies
/// always return through this node's conntrack (pods on one bridge without br_netfilter, hairpin).
fn masquerade_fast_path() -> Chain {
    let masquerade = |family| Rule {
        when: Match::FastPathReply { family },
        then: Action::Masquerade,
    };
    let mut chain = base(
        "nat_postrouting",
        Hook::Postrouting,
        ChainType::Nat,
        SNAT_PRIORITY,
    );
    chain.rules = vec![masquerade(IpFamily::V4), masquerade(IpFamily::V6)];
    chain
}

/// A fast-path connection DNATed to an address of this node (a hostNetwork endpoint) is
/// delivered without passing postrouting, so `masquerade_fast_path` never sees it and the backend
/// would see the client's address where the proxy shows the node's. Source NAT on input to the
/// node's own address keeps one rule for both paths.
fn snat_fast_path_delivered_here() -> Chain {
    let snat = |family| Rule {
        when: Match::FastPathReply { family },
        then: Action::SnatToDestination,
    };
    let mut chain = base("nat_input", Hook::Input, ChainType::Nat, SNAT_PRIORITY);
    chain.rules = vec![snat(IpFamily::V4), snat(IpFamily::V6)];
    chain
}

#[cfg(test)]
mod node_port_tests;
#[cfg(test)]
mod tests;
