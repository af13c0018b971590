//! A packet tracer over a [`RuleSet`]: what our rules do to one packet, without a kernel.
//!
//! It evaluates the same rule objects the backends render, chain by chain in priority order,
//! the way netfilter does for one hook.

use std::net::IpAddr;

use edgemesh_model::{Frontend, Protocol};

use crate::rules::{Action, Hook, IpFamily, Match, RuleSet};

/// The headers and metadata the rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub hook: Hook,
    pub daddr: IpAddr,
    pub protocol: Protocol,
    pub dport: u16,
    pub mark: u32,
    /// The destination is an address of this host (what `fib daddr type local` tells).
    pub daddr_is_local: bool,
}

impl Packet {
    /// A packet entering at `hook` for `daddr:dport`, unmarked.
    pub fn new(hook: Hook, protocol: Protocol, daddr: IpAddr, dport: u16) -> Self {
        Self {
            hook,
            daddr,
            protocol,
            dport,
            mark: 0,
            daddr_is_local: false,
        }
    }

    /// The destination is one of this host's addresses.
    pub fn to_local_address(mut self) -> Self {
        self.daddr_is_local = true;
        self
    }

    pub fn with_mark(mut self, mark: u32) -> Self {
        self.mark = mark;
        self
    }
}

/// What happens to the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Redirected to the transparent TCP proxy port.
    Redirect { port: u16 },
    /// Delivered to the transparent UDP socket on this port.
    Tproxy { port: u16 },
    /// DNATed by the kernel to one of the frontend's backends (the fast path).
    Dnat,
    /// Dropped (a SYN for the proxy while nobody listens; the input hook is not traced).
    Drop,
    /// Our rules let it through untouched (kube-proxy or plain routing handle it).
    Continue,
}

/// Traces `packet` through the chains of its hook. A packet whose mark, set on output, sends it
/// through the local routing table (TPROXY) re-enters at prerouting once.
pub fn trace(rules: &RuleSet, packet: &Packet) -> Verdict {
    let mut packet = *packet;
    if let Some(verdict) = run_hook(rules, &mut packet) {
        return verdict;
    }
    let rerouted = rules.options.udp.is_some_and(|udp| {
        packet.hook == Hook::Output && udp.mark != 0 && packet.mark & udp.mark == udp.mark
    });
    if rerouted {
        packet.hook = Hook::Prerouting;
        return run_hook(rules, &mut packet).unwrap_or(Verdict::Continue);
    }
    Verdict::Continue
}

/// Runs every chain of the packet's hook; `Some` when a rule ended the packet's journey.
fn run_hook(rules: &RuleSet, packet: &mut Packet) -> Option<Verdict> {
    let mut chains: Vec<_> = rules
        .chains
        .iter()
        .filter(|c| c.hook == packet.hook)
        .collect();
    chains.sort_by_key(|c| c.priority);
    for chain in chains {
        for rule in &chain.rules {
            if !matches(rules, &rule.when, packet) {
                continue;
            }
            match rule.then {
                Action::Return => break,
                Action::Redirect { port } => return Some(Verdict::Redirect { port }),
                Action::Tproxy { port, .. } => return Some(Verdict::Tproxy { port }),
                Action::SetMark(mark) => packet.mark = mark,
                Action::NoTrack | Action::Masquerade | Action::SnatToDestination => {}
                Action::DnatToBackends => return Some(Verdict::Dnat),
                Action::Drop => return Some(Verdict::Drop),
            }
        }
    }
    None
}

fn matches(rules: &RuleSet, condition: &Match, packet: &Packet) -> bool {
    let frontend = Frontend {
        ip: packet.daddr,
        port: packet.dport,
        protocol: packet.protocol,
    };
    let family_matches = |family| IpFamily::of(&packet.daddr) == family;
    match *condition {
        Match::Mark(mark) => mark.matches(packet.mark),
        Match::Intercepted { family, protocol } => {
            family_matches(family) && packet.protocol == protocol && rules.contains(&frontend)
        }
        Match::NodePort { family, protocol } => {
            let node_port = Frontend::node_port(packet.daddr, packet.dport, packet.protocol);
            family_matches(family)
                && packet.protocol == protocol
                && packet.daddr_is_local
                && !packet.daddr.is_loopback()
                && rules.contains(&node_port)
        }
        Match::FastPath { family, group } => {
            family_matches(family)
                && rules
                    .fast
                    .get(&frontend)
                    .is_some_and(|route| route.group() == group)
        }
        // Conntrack state and sockets are not modelled: the tracer follows a packet up to its
        // DNAT.
        Match::FastPathReply { .. } | Match::ProxySyn { .. } => false,
    }
}
