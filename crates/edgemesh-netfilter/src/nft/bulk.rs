//! A full rewrite for large tables in two transactions, neither of which leaves a set empty:
//!
//! 1. text (`nft -f`): create the table if absent, flush its rules (`flush table` keeps sets and
//!    their elements), delete every chain and every set or map the new rules do not declare,
//!    then declare the sets, maps and chains with their rules. Packets meet the old rules or the
//!    new ones, with the old elements either way.
//! 2. netlink ([`super::netlink`]): per set and map, flush and add every element. One batch:
//!    packets meet the old elements or the new ones.
//!
//! `nft` would spend ~6 µs and ~2 KB per element parsing text (100,000 services with three
//! endpoints: 500,000 elements, 6-10 s and 600 MB); the batch costs the kernel's inserts.

use std::fmt::Write;

use super::netlink::{Batch, ElementBatch};
use super::{NFT_TABLE, NFT_TABLE_NAME, render_table};
use crate::error::Result;
use crate::rules::RuleSet;
use crate::runner::CommandRunner;

/// The chains, sets and maps our table holds now (names only).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Existing {
    chains: Vec<String>,
    /// `("set" | "map", name)`.
    collections: Vec<(String, String)>,
}

impl Existing {
    /// Asks `nft` for our table's chains, sets and maps without their elements (`-t`): tens of
    /// milliseconds, where listing the table lists every element (seconds at 100,000).
    pub fn list(runner: &dyn CommandRunner) -> Result<Self> {
        let mut listing = String::new();
        for args in [
            &["-t", "list", "sets", "inet"][..],
            &["-t", "list", "maps", "inet"],
            &["list", "chains", "inet"],
        ] {
            listing.push_str(&runner.run("nft", args, None)?);
        }
        Ok(Self::parse(&listing))
    }

    /// The names declared inside `table inet edgemesh { ... }` blocks of `nft list` output.
    pub fn parse(listing: &str) -> Self {
        let mut existing = Self::default();
        let mut ours = false;
        for line in listing.lines().map(str::trim) {
            if let Some(table) = line.strip_prefix("table ") {
                ours = table.trim_end_matches('{').trim() == NFT_TABLE;
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(kind), Some(name), Some("{")) = (words.next(), words.next(), words.next())
            else {
                continue;
            };
            match kind {
                _ if !ours => {}
                "chain" => existing.chains.push(name.to_string()),
                "set" | "map" => existing
                    .collections
                    .push((kind.to_string(), name.to_string())),
                _ => {}
            }
        }
        existing
    }
}

/// The two transactions of the module's rewrite for `rules` over the `existing` table.
pub fn render_nft_bulk(rules: &RuleSet, existing: &Existing) -> (String, Batch) {
    let mut table = String::with_capacity(4096);
    let mut batch = ElementBatch::new(NFT_TABLE_NAME);
    render_table(&mut table, rules, Some(&mut batch));
    let mut text = format!("table {NFT_TABLE} {{}}\nflush table {NFT_TABLE}\n");
    for chain in &existing.chains {
        let _ = writeln!(text, "delete chain {NFT_TABLE} {chain}");
    }
    for (kind, name) in &existing.collections {
        if !batch.declares(name) {
            let _ = writeln!(text, "delete {kind} {NFT_TABLE} {name}");
        }
    }
    text.push_str(&table);
    (text, batch.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::sample_snapshot;
    use crate::{RuleOptions, desired_rules};

    /// The rewrite never deletes the table or a set it declares again: their elements stay
    /// until the batch replaces them.
    #[test]
    fn the_text_keeps_what_is_declared_again_and_deletes_the_rest() {
        let rules = desired_rules(&sample_snapshot(), &RuleOptions::default());
        let existing = Existing {
            chains: vec!["proxy_hold".into(), "someone_elses".into()],
            collections: vec![("set".into(), "svc4".into()), ("map".into(), "gone".into())],
        };
        let (text, batch) = render_nft_bulk(&rules, &existing);
        assert!(!text.contains("delete table"), "{text}");
        assert!(!text.contains("delete set inet edgemesh svc4"), "{text}");
        for line in [
            "flush table inet edgemesh",
            "delete chain inet edgemesh someone_elses",
            "delete map inet edgemesh gone",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert!(
            !text.contains("elements ="),
            "elements go in the batch:\n{text}"
        );
        assert!(
            batch.acks >= 4,
            "a flush and a fill per set: {}",
            batch.acks
        );
    }

    #[test]
    fn only_our_tables_names_are_taken() {
        let listing = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n\
            table inet edgemesh {\n\tset svc4 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t}\n\
            \tmap fast4_rr_3 {\n\t\ttypeof ip daddr . tcp dport . numgen inc mod 3 : ip daddr . tcp dport\n\t}\n\
            \tchain proxy_hold {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n\
            table ip nat {\n\tset svc4 {\n\t}\n}\n";
        let existing = Existing::parse(listing);
        assert_eq!(existing.chains, ["proxy_hold"]);
        assert_eq!(
            existing.collections,
            [
                ("set".into(), "svc4".into()),
                ("map".into(), "fast4_rr_3".into())
            ]
        );
        assert_eq!(Existing::parse(""), Existing::default());
    }
}
