//! The nftables backend: our own `table inet edgemesh`, replaced whole in one `nft -f -`
//! transaction per sync.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use edgemesh_model::Protocol;

use crate::backend::{RuleBackend, SyncStats};
use crate::error::Result;
use crate::rules::{Action, ChainType, Hook, IpFamily, Match, RuleSet};
use crate::runner::CommandRunner;

mod fast;

/// Family and name of our table.
pub const NFT_TABLE: &str = "inet edgemesh";

/// The whole transaction for one sync: create the table if absent (so the delete cannot fail),
/// delete it, define it anew. The kernel applies all of it or none of it.
pub fn render_nft(rules: &RuleSet) -> String {
    let mut out = String::with_capacity(256 + rules.elements.len() * 32);
    out.push_str(&render_nft_cleanup());
    let _ = writeln!(out, "table {NFT_TABLE} {{");
    render_set(&mut out, rules, IpFamily::V4);
    render_set(&mut out, rules, IpFamily::V6);
    render_node_port_set(&mut out, rules, IpFamily::V4);
    render_node_port_set(&mut out, rules, IpFamily::V6);
    fast::render(&mut out, rules);
    for chain in &rules.chains {
        let _ = writeln!(out, "\tchain {} {{", chain.name);
        let _ = writeln!(
            out,
            "\t\ttype {} hook {} priority {}; policy accept;",
            chain_type(chain.chain_type),
            hook(chain.hook),
            chain.priority
        );
        for rule in &chain.rules {
            let _ = writeln!(out, "\t\t{} {}", condition(&rule.when), action(rule));
        }
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    out
}

/// Removes our table, whether or not it exists.
pub fn render_nft_cleanup() -> String {
    format!("table {NFT_TABLE} {{}}\ndelete table {NFT_TABLE}\n")
}

fn set_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "svc4",
        IpFamily::V6 => "svc6",
    }
}

fn render_set(out: &mut String, rules: &RuleSet, family: IpFamily) {
    let _ = writeln!(out, "\tset {} {{", set_name(family));
    let _ = writeln!(
        out,
        "\t\ttype {} . inet_proto . inet_service",
        addr_type(family)
    );
    let elements = rules
        .elements
        .keys()
        .filter(|f| IpFamily::of(&f.ip) == family && !f.is_node_port())
        .map(|f| format!("{} . {} . {}", f.ip, l4(f.protocol), f.port));
    render_elements(out, elements);
    out.push_str("\t}\n");
}

fn node_port_set_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "nodeport4",
        IpFamily::V6 => "nodeport6",
    }
}

/// Node ports of one family: protocol and port only, the address is any local one.
fn render_node_port_set(out: &mut String, rules: &RuleSet, family: IpFamily) {
    let _ = writeln!(out, "\tset {} {{", node_port_set_name(family));
    out.push_str("\t\ttype inet_proto . inet_service\n");
    let elements = rules
        .elements
        .keys()
        .filter(|f| IpFamily::of(&f.ip) == family && f.is_node_port())
        .map(|f| format!("{} . {}", l4(f.protocol), f.port));
    render_elements(out, elements);
    out.push_str("\t}\n");
}

/// Loopback is not a node-port address (as in kube-proxy's nftables mode).
fn loopback(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "127.0.0.0/8",
        IpFamily::V6 => "::1",
    }
}

/// `elements = { a, b, ... }` of a set or map; nothing for none.
fn render_elements(out: &mut String, elements: impl Iterator<Item = String>) {
    let mut elements = elements.peekable();
    if elements.peek().is_none() {
        return;
    }
    out.push_str("\t\telements = {");
    for (i, element) in elements.enumerate() {
        let sep = if i == 0 { " " } else { ",\n\t\t\t" };
        let _ = write!(out, "{sep}{element}");
    }
    out.push_str(" }\n");
}

/// The nft type of one family's addresses.
fn addr_type(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ipv4_addr",
        IpFamily::V6 => "ipv6_addr",
    }
}

fn l4(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn chain_type(t: ChainType) -> &'static str {
    match t {
        ChainType::Nat => "nat",
        ChainType::Filter => "filter",
        ChainType::Route => "route",
    }
}

fn hook(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "prerouting",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
        Hook::Input => "input",
    }
}

fn condition(m: &Match) -> String {
    match *m {
        Match::Mark(mark) => format!("meta mark & {:#010x} == {:#010x}", mark.mask, mark.value),
        Match::Intercepted { family, protocol } => format!(
            "meta l4proto {} {} daddr . meta l4proto . th dport @{}",
            l4(protocol),
            addr(family),
            set_name(family)
        ),
        Match::NodePort { family, protocol } => format!(
            "meta l4proto {} {} daddr != {} fib daddr type local meta l4proto . th dport @{}",
            l4(protocol),
            addr(family),
            loopback(family),
            node_port_set_name(family)
        ),
        Match::FastPath { .. } => "meta l4proto tcp".into(),
        Match::FastPathReply { family } => format!(
            "meta l4proto tcp ct status dnat ct original {} daddr . ct original proto-dst @{}",
            addr(family),
            fast::set_name(family)
        ),
        // A listener of either kind (transparent or not) is "a socket listens": the lookup
        // fails, and the rule does not match, only when nobody does.
        Match::ProxySyn { port, listening } => {
            let syn = format!("tcp dport {port} tcp flags & (syn | ack) == syn ct status dnat");
            if listening {
                format!("{syn} socket transparent {{ 0, 1 }}")
            } else {
                syn
            }
        }
    }
}

fn addr(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ip",
        IpFamily::V6 => "ip6",
    }
}

fn action(rule: &crate::rules::Rule) -> String {
    match rule.then {
        Action::Return => "return".into(),
        Action::Redirect { port } => format!("redirect to :{port}"),
        Action::Tproxy { port, mark } => {
            let family = match rule.when {
                Match::Intercepted {
                    family: IpFamily::V6,
                    ..
                }
                | Match::NodePort {
                    family: IpFamily::V6,
                    ..
                } => "ip6",
                _ => "ip",
            };
            format!("tproxy {family} to :{port} meta mark set {mark:#010x} accept")
        }
        Action::SetMark(mark) => format!("meta mark set {mark:#010x}"),
        Action::NoTrack => "notrack".into(),
        Action::DnatToBackends => match rule.when {
            Match::FastPath { family, group } => format!(
                "dnat {} to {} map @{}",
                addr(family),
                fast::key(family, group),
                fast::map_name(family, group)
            ),
            // Rule generation pairs this action with FastPath only.
            _ => "accept".into(),
        },
        Action::Masquerade => "masquerade".into(),
        Action::Drop => "drop".into(),
    }
}

/// Applies rule sets with `nft -f -`.
#[derive(Debug)]
pub struct NftBackend {
    runner: Arc<dyn CommandRunner>,
}

impl NftBackend {
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self { runner }
    }

    /// Whether `nft` runs and can list tables here (it needs CAP_NET_ADMIN and kernel support).
    pub fn probe(runner: &dyn CommandRunner) -> Result<()> {
        runner.run("nft", &["list", "tables"], None).map(|_| ())
    }

    /// Our table as the kernel holds it (`nft list table inet edgemesh`).
    pub fn list(&self) -> Result<String> {
        self.runner
            .run("nft", &["list", "table", "inet", "edgemesh"], None)
    }
}

impl RuleBackend for NftBackend {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn kind(&self) -> crate::backend::BackendKind {
        crate::backend::BackendKind::Nftables
    }

    fn apply(&mut self, rules: &RuleSet) -> Result<SyncStats> {
        let started = Instant::now();
        let text = render_nft(rules);
        self.runner.run("nft", &["-f", "-"], Some(&text))?;
        Ok(SyncStats {
            backend: self.name(),
            frontends: rules.elements.len(),
            bytes: text.len(),
            duration: started.elapsed(),
            fast_path: rules.fast.len(),
            order_repaired: false,
        })
    }

    fn cleanup(&mut self) -> Result<()> {
        let text = render_nft_cleanup();
        self.runner
            .run("nft", &["-f", "-"], Some(&text))
            .map(|_| ())
    }

    /// Priorities, not positions, order our chains ahead of kube-proxy: nothing to repair.
    fn repair(&mut self) -> Result<bool> {
        Ok(false)
    }
}
