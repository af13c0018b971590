//! Keeping EdgeMesh's jumps first in nat PREROUTING and OUTPUT (pure: save text in, restore
//! lines out).
//!
//! kube-proxy (iptables mode) *prepends* its `KUBE-SERVICES` jump whenever it finds it missing,
//! e.g. after it restarts, which puts it ahead of ours. EdgeMesh documented "redeploy to fix";
//! we read `iptables-save -t nat`, and when anything precedes our jump (or it is duplicated), we
//! delete every copy and insert one at position 1 in a single restore, so there is no moment
//! without the jump.

use std::collections::{BTreeMap, BTreeSet};

/// nat PREROUTING → our chain for traffic from containers and other hosts.
pub const CONTAINER_CHAIN: &str = "KUBE-PORTALS-CONTAINER";
/// nat OUTPUT → our chain for traffic from the host itself.
pub const HOST_CHAIN: &str = "KUBE-PORTALS-HOST";
/// The comment EdgeMesh puts on its jumps (kept for operators who grep for it).
pub const JUMP_COMMENT: &str = "handle ClusterIPs; NOTE: this must be before the NodePort rules";

/// (base chain, our chain it must jump to first).
pub const JUMPS: [(&str, &str); 2] = [("PREROUTING", CONTAINER_CHAIN), ("OUTPUT", HOST_CHAIN)];

/// The nat table as `iptables-save -t nat` printed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatTable {
    /// Declared chains (`:NAME ...`).
    pub chains: BTreeSet<String>,
    /// Rule specs per chain, in order, without the leading `-A CHAIN `.
    pub rules: BTreeMap<String, Vec<String>>,
}

impl NatTable {
    /// Parses the `*nat` section of `iptables-save` output; other tables are ignored.
    pub fn parse(save: &str) -> Self {
        Self::parse_table(save, "nat")
    }

    /// Parses the `*{name}` section (`raw`, `mangle`: the UDP chains) the same way.
    pub fn parse_table(save: &str, name: &str) -> Self {
        let mut table = NatTable::default();
        let mut in_nat = false;
        for line in save.lines().map(str::trim) {
            if let Some(section) = line.strip_prefix('*') {
                in_nat = section == name;
            } else if !in_nat {
                continue;
            } else if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap_or_default();
                table.chains.insert(name.to_string());
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
                let specs = table.rules.entry(chain.to_string()).or_default();
                specs.push(spec.to_string());
            }
        }
        table
    }

    pub fn rules_of(&self, chain: &str) -> &[String] {
        self.rules.get(chain).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Whether a rule spec jumps (or goes) to `target`.
pub fn jumps_to(spec: &str, target: &str) -> bool {
    let tokens: Vec<&str> = spec.split_whitespace().collect();
    tokens
        .windows(2)
        .any(|w| (w[0] == "-j" || w[0] == "-g") && w[1] == target)
}

/// How our jumps stood before a sync or repair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JumpState {
    /// Each base chain starts with exactly one jump to ours.
    InOrder,
    /// A jump was missing (first install, or someone deleted it).
    Missing,
    /// Something preceded our jump, or it was duplicated: moved back to position 1.
    OutOfOrder,
}

/// Restore lines that put exactly one jump to ours at position 1 of each base chain, and how the
/// jumps stood. No lines when they are in order.
pub fn plan_jumps(table: &NatTable) -> (Vec<String>, JumpState) {
    plan_jumps_to(table, &JUMPS)
}

/// [`plan_jumps`] for other (base chain, our chain) pairs, e.g. the UDP chains of raw and mangle.
pub fn plan_jumps_to(table: &NatTable, jumps: &[(&str, &str)]) -> (Vec<String>, JumpState) {
    let mut lines = Vec::new();
    let mut state = JumpState::InOrder;
    for &(base, ours) in jumps {
        let rules = table.rules_of(base);
        let positions: Vec<usize> = (0..rules.len())
            .filter(|&i| jumps_to(&rules[i], ours))
            .collect();
        if positions == [0] {
            continue;
        }
        state = match (state, positions.is_empty()) {
            (JumpState::OutOfOrder, _) | (_, false) => JumpState::OutOfOrder,
            _ => JumpState::Missing,
        };
        lines.extend(positions.iter().map(|&i| format!("-D {base} {}", rules[i])));
        lines.push(format!(
            "-I {base} 1 -m comment --comment \"{JUMP_COMMENT}\" -j {ours}"
        ));
    }
    (lines, state)
}

/// Restore lines that remove our jumps and chains (only what exists, so the restore cannot fail
/// on a missing rule).
pub fn plan_cleanup(table: &NatTable) -> Vec<String> {
    plan_cleanup_of(table, &JUMPS)
}

/// [`plan_cleanup`] for other (base chain, our chain) pairs.
pub fn plan_cleanup_of(table: &NatTable, jumps: &[(&str, &str)]) -> Vec<String> {
    let mut lines = Vec::new();
    for &(base, ours) in jumps {
        let jumps = table.rules_of(base).iter().filter(|s| jumps_to(s, ours));
        lines.extend(jumps.map(|spec| format!("-D {base} {spec}")));
    }
    for &(_, ours) in jumps {
        if table.chains.contains(ours) {
            lines.push(format!("-F {ours}"));
            lines.push(format!("-X {ours}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests;
