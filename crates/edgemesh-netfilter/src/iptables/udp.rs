//! UDP through TPROXY with iptables: the rule set's UDP chains (notrack at raw priority, TPROXY
//! and the re-routing mark at mangle priority) rendered into tables `raw` and `mangle`, each
//! jumped to first from PREROUTING (containers, other hosts) and OUTPUT (the host).

use std::fmt::Write;

use super::Section;
use super::order::{NatTable, plan_cleanup_of, plan_jumps_to};
use crate::rules::{Chain, ChainType, IpFamily, MANGLE_PRIORITY, RAW_PRIORITY, RuleSet};

pub const RAW_CONTAINER_CHAIN: &str = "EDGEMESH-UDP-RAW-CONTAINER";
pub const RAW_HOST_CHAIN: &str = "EDGEMESH-UDP-RAW-HOST";
pub const MANGLE_CONTAINER_CHAIN: &str = "EDGEMESH-UDP-CONTAINER";
pub const MANGLE_HOST_CHAIN: &str = "EDGEMESH-UDP-HOST";

/// One table's UDP chains: (table, priority of the rule set's chains, jumps (base, ours)).
struct UdpTable {
    name: &'static str,
    priority: i32,
    jumps: [(&'static str, &'static str); 2],
}

const TABLES: [UdpTable; 2] = [
    UdpTable {
        name: "raw",
        priority: RAW_PRIORITY,
        jumps: [
            ("PREROUTING", RAW_CONTAINER_CHAIN),
            ("OUTPUT", RAW_HOST_CHAIN),
        ],
    },
    UdpTable {
        name: "mangle",
        priority: MANGLE_PRIORITY,
        jumps: [
            ("PREROUTING", MANGLE_CONTAINER_CHAIN),
            ("OUTPUT", MANGLE_HOST_CHAIN),
        ],
    },
];

/// The tables `iptables-save -t` must read before a UDP sync or cleanup.
pub const UDP_TABLES: [&str; 2] = ["raw", "mangle"];

/// Restore text for one family: both tables' chains declared (which flushes them), refilled
/// from the rule set's UDP chains, and their jumps fixed. `saved` holds `iptables-save -t TABLE`
/// of each of [`UDP_TABLES`], in that order.
pub fn render_udp(rules: &RuleSet, family: IpFamily, saved: &[String; 2]) -> String {
    let mut out = String::new();
    for (table, saved) in TABLES.iter().zip(saved) {
        let current = NatTable::parse_table(saved, table.name);
        let (jump_lines, _) = plan_jumps_to(&current, &table.jumps);
        let section = Section {
            table: table.name,
            ours: [table.jumps[0].1, table.jumps[1].1],
            jump_lines: &jump_lines,
        };
        let chains = rules.chains.iter().filter(|c| is_in(c, table));
        section.render(&mut out, rules, family, chains);
    }
    out
}

/// Restore text that removes our UDP chains and their jumps (empty when there are none);
/// `saved` as for [`render_udp`].
pub fn render_udp_cleanup(saved: &[String; 2]) -> String {
    let mut out = String::new();
    for (table, saved) in TABLES.iter().zip(saved) {
        let current = NatTable::parse_table(saved, table.name);
        let lines = plan_cleanup_of(&current, &table.jumps);
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{}\n{}\nCOMMIT", table.name, lines.join("\n"));
    }
    out
}

fn is_in(chain: &Chain, table: &UdpTable) -> bool {
    chain.chain_type != ChainType::Nat && chain.priority == table.priority
}
