//! Rule order: our interception must see a ClusterIP packet before kube-proxy DNATs it.
//!
//! - nftables backend: our `table inet edgemesh` hooks nat prerouting/output at priority -110;
//!   any other nat chain on the same hook at that priority or earlier runs first (kube-proxy's
//!   own is at -100).
//! - iptables backend: the jumps to `KUBE-PORTALS-CONTAINER`/`KUBE-PORTALS-HOST` must come
//!   before kube-proxy's `KUBE-SERVICES` in nat PREROUTING/OUTPUT (`edgemesh-netfilter`'s
//!   order code parses `iptables-save` and names the chains).

use edgemesh_netfilter::iptables::order::{JUMPS, NatTable, jumps_to};
use serde_json::Value;

use crate::gather::Fetched;
use crate::report::Finding;

const CHECK: &str = "rules.order";
const KUBE_SERVICES: &str = "KUBE-SERVICES";
const OUR_TABLE: (&str, &str) = ("inet", "edgemesh");
const REPAIRS: &str = "edgemesh_proxier_order_repairs_total";

/// One base chain of `nft -j list ruleset`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BaseChain {
    family: String,
    table: String,
    name: String,
    chain_type: String,
    hook: String,
    prio: i64,
    /// One of its rules jumps to kube-proxy's service chain.
    jumps_to_kube: bool,
}

pub fn order(
    proxy_port: Option<u16>,
    nft: &Result<String, String>,
    iptables: &Result<String, String>,
    metrics: &Fetched,
) -> Finding {
    if proxy_port.is_none() {
        return Finding::skip(CHECK, "modules.edgeProxy is off: no interception rules");
    }
    let chains = nft.as_deref().ok().map(nft_base_chains);
    let nat = iptables.as_deref().ok().map(NatTable::parse);
    let ours_nft = chains.as_ref().is_some_and(|c| {
        c.iter()
            .any(|c| (c.family.as_str(), c.table.as_str()) == OUR_TABLE)
    });
    let ours_iptables = nat
        .as_ref()
        .is_some_and(|t| JUMPS.iter().any(|(_, ours)| t.chains.contains(*ours)));
    if !ours_nft && !ours_iptables {
        return none_found(nft, iptables);
    }
    let mut problem = None;
    if let (true, Some(chains)) = (ours_nft, &chains) {
        problem = nft_order(chains);
    }
    if let (None, true, Some(nat)) = (&problem, ours_iptables, &nat) {
        problem = iptables_order(nat);
    }
    if let Some(problem) = problem {
        return problem;
    }
    let backend = match (ours_nft, ours_iptables) {
        (true, true) => "nftables table inet edgemesh and iptables KUBE-PORTALS-*",
        (true, false) => "nftables table inet edgemesh",
        _ => "iptables KUBE-PORTALS-* jumps",
    };
    let message = format!("{backend} ahead of kube-proxy");
    match super::metric(metrics, REPAIRS) {
        Some(n) if n > 0 => Finding::warn(
            CHECK,
            format!("{message}, but the agent had to move its jumps back {n} times"),
            "something keeps inserting its jump first (kube-proxy after each restart): harmless while the agent repairs it every 10 s; run kube-proxy in nftables mode or not at all on edge nodes",
        ),
        _ => Finding::pass(CHECK, message),
    }
}

fn none_found(nft: &Result<String, String>, iptables: &Result<String, String>) -> Finding {
    if let (Err(a), Err(b)) = (nft, iptables) {
        return Finding::warn(
            CHECK,
            format!("cannot read the rules: {a}; {b}"),
            "run edgemesh doctor as root on the node (it needs nft or iptables-save)",
        );
    }
    Finding::fail(
        CHECK,
        "no edgemesh interception rules (no nft table inet edgemesh, no KUBE-PORTALS-* chains)",
        "start the agent with modules.edgeProxy.enable: true and wait for /readyz; the rules come with its first complete sync",
    )
}

/// Our nat base chains against every other nat chain on the same hook.
fn nft_order(chains: &[BaseChain]) -> Option<Finding> {
    let nat = |c: &&BaseChain| c.chain_type == "nat";
    let ours: Vec<&BaseChain> = chains
        .iter()
        .filter(nat)
        .filter(|c| (c.family.as_str(), c.table.as_str()) == OUR_TABLE)
        .collect();
    for mine in &ours {
        let ahead = chains.iter().filter(nat).find(|c| {
            (c.family.as_str(), c.table.as_str()) != OUR_TABLE
                && matches!(c.family.as_str(), "ip" | "inet")
                && c.hook == mine.hook
                && c.prio <= mine.prio
        });
        let Some(other) = ahead else { continue };
        let message = format!(
            "nft table {} {} chain {} (hook {}, priority {}) runs no later than ours (priority {})",
            other.family, other.table, other.name, other.hook, other.prio, mine.prio
        );
        let fix = "give that chain a priority above -110 (kube-proxy's nat chains sit at -100) or remove it";
        return Some(match other.jumps_to_kube || other.table == "kube-proxy" {
            true => Finding::fail(
                CHECK,
                format!("{message}: kube-proxy DNATs ClusterIPs before edgemesh sees them"),
                fix,
            ),
            false => Finding::warn(
                CHECK,
                format!("{message}: it may DNAT ClusterIP traffic first"),
                fix,
            ),
        });
    }
    None
}

/// Our jumps against kube-proxy's in nat PREROUTING and OUTPUT.
fn iptables_order(table: &NatTable) -> Option<Finding> {
    for (base, ours) in JUMPS {
        let rules = table.rules_of(base);
        let mine = rules.iter().position(|r| jumps_to(r, ours));
        let kube = rules.iter().position(|r| jumps_to(r, KUBE_SERVICES));
        let fix = "the agent puts its jumps back first within 10 s; if this stays, the agent is not running (or runs another backend): restart it, or `iptables -t nat -D PREROUTING -j KUBE-SERVICES` and let kube-proxy re-append it";
        match (mine, kube) {
            (None, _) => {
                return Some(Finding::fail(
                    CHECK,
                    format!("nat {base} has no jump to {ours}"),
                    "restart the agent (it installs the jump at its next sync); check its log for `rule sync failed`",
                ));
            }
            (Some(m), Some(k)) if k < m => {
                return Some(Finding::fail(
                    CHECK,
                    format!(
                        "kube-proxy's jump to {KUBE_SERVICES} is rule {} of nat {base}, ahead of ours to {ours} (rule {}): ClusterIP traffic goes to kube-proxy",
                        k + 1,
                        m + 1
                    ),
                    fix,
                ));
            }
            _ => {}
        }
    }
    None
}

/// Base chains of `nft -j list ruleset`, with whether their rules jump to `KUBE-SERVICES`.
/// Anything unexpected in the JSON is skipped, never an error.
fn nft_base_chains(json: &str) -> Vec<BaseChain> {
    let Ok(value) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let items = value["nftables"].as_array().cloned().unwrap_or_default();
    let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let mut chains: Vec<BaseChain> = items
        .iter()
        .filter_map(|item| item.get("chain"))
        .filter(|c| c.get("hook").is_some())
        .map(|c| BaseChain {
            family: text(c, "family"),
            table: text(c, "table"),
            name: text(c, "name"),
            chain_type: text(c, "type"),
            hook: text(c, "hook"),
            prio: priority(&c["prio"]),
            jumps_to_kube: false,
        })
        .collect();
    for rule in items.iter().filter_map(|item| item.get("rule")) {
        let jumps = rule.to_string().contains(&format!("\"{KUBE_SERVICES}\""));
        if !jumps {
            continue;
        }
        for chain in chains.iter_mut().filter(|c| {
            c.family == text(rule, "family")
                && c.table == text(rule, "table")
                && c.name == text(rule, "chain")
        }) {
            chain.jumps_to_kube = true;
        }
    }
    chains
}

/// `"prio": -110`, or a named one (`"dstnat"`) as nft prints for standard priorities.
fn priority(value: &Value) -> i64 {
    if let Some(n) = value.as_i64() {
        return n;
    }
    match value.as_str() {
        Some("raw") => -300,
        Some("mangle") => -150,
        Some("dstnat") => -100,
        Some("filter") => 0,
        Some("security") => 50,
        Some("srcnat") => 100,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
