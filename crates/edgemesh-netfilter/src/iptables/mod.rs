//! The iptables backend, for hosts without nftables: EdgeMesh's chain names, one
//! `iptables-restore --noflush` per family and sync, and the jumps kept first.

pub mod order;
pub mod udp;

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use edgemesh_model::Protocol;

use crate::backend::{RuleBackend, SyncStats};
use crate::error::Result;
use crate::rules::{Action, Chain, ChainType, Hook, IpFamily, Match, RuleSet};
use crate::runner::CommandRunner;
use order::{CONTAINER_CHAIN, HOST_CHAIN, JumpState, NatTable, plan_cleanup, plan_jumps};

/// The nat section for one family: our chains declared (which flushes them under `--noflush`),
/// refilled, then `jump_lines` (from [`order::plan_jumps`]). The UDP chains live in raw and
/// mangle ([`udp::render_udp`]). The kernel fast path is not rendered: its frontends are
/// redirected to the proxy like the others (they are in `rules.elements` too).
pub fn render_iptables(rules: &RuleSet, family: IpFamily, jump_lines: &[String]) -> String {
    let mut out = String::with_capacity(128 + rules.elements.len() * 128);
    let nat = rules
        .chains
        .iter()
        .filter(|c| c.chain_type == ChainType::Nat);
    let section = Section {
        table: "nat",
        ours: [CONTAINER_CHAIN, HOST_CHAIN],
        jump_lines,
    };
    section.render(&mut out, rules, family, nat);
    out
}

/// One table of a restore: our two chains declared (which flushes them under `--noflush`), the
/// rule set's chains rendered into them by hook, then the jump lines.
pub(crate) struct Section<'a> {
    pub(crate) table: &'a str,
    /// Our chains for PREROUTING (containers, other hosts) and OUTPUT (the host).
    pub(crate) ours: [&'a str; 2],
    pub(crate) jump_lines: &'a [String],
}

impl Section<'_> {
    pub(crate) fn render<'c>(
        &self,
        out: &mut String,
        rules: &RuleSet,
        family: IpFamily,
        chains: impl Iterator<Item = &'c Chain>,
    ) {
        let [container, host] = self.ours;
        let _ = writeln!(
            out,
            "*{}\n:{container} - [0:0]\n:{host} - [0:0]",
            self.table
        );
        for chain in chains {
            let name = match chain.hook {
                Hook::Prerouting => container,
                Hook::Output => host,
                // Only the fast path's masquerade lives there, and iptables has no fast path.
                Hook::Postrouting => continue,
                // The proxy's hold chain needs nft's socket lookup.
                Hook::Input => continue,
            };
            for rule in &chain.rules {
                render_rule(out, rules, family, name, rule);
            }
        }
        for line in self.jump_lines {
            let _ = writeln!(out, "{line}");
        }
        out.push_str("COMMIT\n");
    }
}

pub(crate) fn render_rule(
    out: &mut String,
    rules: &RuleSet,
    family: IpFamily,
    chain: &str,
    rule: &crate::rules::Rule,
) {
    let target = match rule.then {
        Action::Return => "RETURN".to_string(),
        Action::Redirect { port } => format!("REDIRECT --to-ports {port}"),
        Action::NoTrack => "CT --notrack".to_string(),
        Action::Tproxy { port, mark } => {
            format!("TPROXY --on-port {port} --tproxy-mark {mark:#x}/{mark:#x}")
        }
        Action::SetMark(mark) => format!("MARK --set-mark {mark:#x}"),
        // The kernel fast path and the proxy's hold chain are nftables-only.
        Action::DnatToBackends | Action::Masquerade | Action::SnatToDestination | Action::Drop => {
            return;
        }
    };
    match rule.when {
        Match::Mark(m) => {
            let _ = writeln!(
                out,
                "-A {chain} -m mark --mark {:#x}/{:#x} -j {target}",
                m.value, m.mask
            );
        }
        Match::Intercepted {
            family: f,
            protocol,
        } if f == family => {
            let prefix = if family == IpFamily::V4 { 32 } else { 128 };
            for (frontend, label) in rules.elements_of(family, protocol) {
                let to = format!("-d {}/{prefix}", frontend.ip);
                let line = PortRule::new(&to, protocol, frontend.port);
                line.write(out, chain, label, &target);
            }
        }
        Match::NodePort {
            family: f,
            protocol,
        } if f == family => {
            let loopback = if family == IpFamily::V4 {
                "127.0.0.0/8"
            } else {
                "::1/128"
            };
            let to = format!("-m addrtype --dst-type LOCAL ! -d {loopback}");
            for (frontend, label) in rules.node_ports_of(family, protocol) {
                let line = PortRule::new(&to, protocol, frontend.port);
                line.write(out, chain, &format!("{label} nodePort"), &target);
            }
        }
        Match::Intercepted { .. }
        | Match::NodePort { .. }
        | Match::FastPath { .. }
        | Match::FastPathReply { .. }
        | Match::ProxySyn { .. } => {}
    }
}

/// One `-A` line for traffic to `to` (address or node-port match) at a protocol and port.
struct PortRule<'a> {
    to: &'a str,
    protocol: &'static str,
    port: u16,
}

impl<'a> PortRule<'a> {
    fn new(to: &'a str, protocol: Protocol, port: u16) -> Self {
        let protocol = if protocol == Protocol::Tcp {
            "tcp"
        } else {
            "udp"
        };
        Self { to, protocol, port }
    }

    fn write(&self, out: &mut String, chain: &str, label: &str, target: &str) {
        let Self { to, protocol, port } = self;
        let label = label.replace('"', "");
        let _ = writeln!(
            out,
            "-A {chain} {to} -p {protocol} -m comment --comment \"{label}\" \
             -m {protocol} --dport {port} -j {target}"
        );
    }
}

/// The save/restore programs of one family.
fn tools(family: IpFamily) -> (&'static str, &'static str) {
    family.pick(
        ("iptables-save", "iptables-restore"),
        ("ip6tables-save", "ip6tables-restore"),
    )
}

/// Applies rule sets with `iptables-restore --noflush -w` (and `ip6tables-restore`).
#[derive(Debug)]
pub struct IptablesBackend {
    runner: Arc<dyn CommandRunner>,
    families: Vec<IpFamily>,
    /// Whether a sync without UDP has removed the UDP chains an earlier run may have left
    /// (checked once: they would send UDP to a port nobody listens on).
    udp_leftovers_checked: bool,
}

impl IptablesBackend {
    /// Both families.
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self::with_families(runner, &[IpFamily::V4, IpFamily::V6])
    }

    /// Only these families (e.g. IPv4 on a host where IPv6 is disabled).
    pub fn with_families(runner: Arc<dyn CommandRunner>, families: &[IpFamily]) -> Self {
        Self {
            runner,
            families: families.to_vec(),
            udp_leftovers_checked: false,
        }
    }

    /// Whether `iptables-save -t nat` works here.
    pub fn probe(runner: &dyn CommandRunner) -> Result<()> {
        runner
            .run("iptables-save", &["-t", "nat"], None)
            .map(|_| ())
    }

    /// The nat table of `family` as the kernel holds it.
    pub fn save(&self, family: IpFamily) -> Result<String> {
        self.runner.run(tools(family).0, &["-t", "nat"], None)
    }

    /// `iptables-save -t raw` and `-t mangle` of `family` (the UDP chains' tables).
    fn save_udp_tables(&self, family: IpFamily) -> Result<[String; 2]> {
        let [raw, mangle] = udp::UDP_TABLES;
        let save = |table| self.runner.run(tools(family).0, &["-t", table], None);
        Ok([save(raw)?, save(mangle)?])
    }

    /// The UDP part of a sync: the chains when UDP is on; when it is off, the removal (once) of
    /// chains an earlier run left.
    fn apply_udp(&mut self, rules: &RuleSet, family: IpFamily) -> Result<usize> {
        let text = match rules.options.udp {
            Some(_) => udp::render_udp(rules, family, &self.save_udp_tables(family)?),
            None if !self.udp_leftovers_checked => {
                udp::render_udp_cleanup(&self.save_udp_tables(family)?)
            }
            None => String::new(),
        };
        if !text.is_empty() {
            self.restore(family, &text)?;
        }
        Ok(text.len())
    }

    fn restore(&self, family: IpFamily, text: &str) -> Result<()> {
        let args = ["--noflush", "-w", "5"];
        self.runner
            .run(tools(family).1, &args, Some(text))
            .map(|_| ())
    }

    /// Puts the jumps back at position 1 if they are not; true when something was out of order.
    /// Run after each sync and on a timer: kube-proxy prepends its own jump when it restarts.
    pub fn check_and_repair_order(&mut self) -> Result<bool> {
        let mut repaired = false;
        for family in self.families.clone() {
            let (lines, state) = plan_jumps(&NatTable::parse(&self.save(family)?));
            if lines.is_empty() {
                continue;
            }
            let text = format!("*nat\n{}\nCOMMIT\n", lines.join("\n"));
            self.restore(family, &text)?;
            repaired |= state == JumpState::OutOfOrder;
        }
        Ok(repaired)
    }
}

impl RuleBackend for IptablesBackend {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn kind(&self) -> crate::backend::BackendKind {
        crate::backend::BackendKind::Iptables
    }

    /// Always the whole of our chains: iptables-restore has no sets to update element by
    /// element here, and the iptables backend serves small hosts without nftables.
    fn apply(&mut self, rules: RuleSet) -> Result<SyncStats> {
        let rules = &rules;
        let started = Instant::now();
        let mut bytes = 0;
        let mut repaired = false;
        for family in self.families.clone() {
            let (lines, state) = plan_jumps(&NatTable::parse(&self.save(family)?));
            let text = render_iptables(rules, family, &lines);
            self.restore(family, &text)?;
            bytes += text.len() + self.apply_udp(rules, family)?;
            repaired |= state == JumpState::OutOfOrder;
        }
        self.udp_leftovers_checked = true;
        Ok(SyncStats {
            backend: self.name(),
            frontends: rules.elements.len(),
            bytes,
            duration: started.elapsed(),
            fast_path: 0,
            order_repaired: repaired,
            incremental: false,
        })
    }

    fn cleanup(&mut self) -> Result<()> {
        for family in self.families.clone() {
            let lines = plan_cleanup(&NatTable::parse(&self.save(family)?));
            if !lines.is_empty() {
                self.restore(family, &format!("*nat\n{}\nCOMMIT\n", lines.join("\n")))?;
            }
            let udp = udp::render_udp_cleanup(&self.save_udp_tables(family)?);
            if !udp.is_empty() {
                self.restore(family, &udp)?;
            }
        }
        Ok(())
    }

    fn repair(&mut self) -> Result<bool> {
        self.check_and_repair_order()
    }
}
