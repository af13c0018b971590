//! The nftables backend: our own `table inet edgemesh`, one `nft -f -` transaction per sync:
//! the whole table replaced on the first sync and when its structure changes, otherwise only
//! the set and map elements that changed ([`render_nft_delta`]). A large table's full rewrite
//! sends its elements as one netlink batch after the text ([`render_nft_bulk`]).

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgemesh_model::Frontend;

use crate::backend::{RuleBackend, SyncStats};
use crate::error::Result;
use crate::rules::{Action, ChainType, Hook, IpFamily, Match, RuleSet};
use crate::runner::CommandRunner;

mod bulk;
mod delta;
mod element;
mod fast;
mod netlink;

pub use bulk::{Existing, render_nft_bulk};
pub use delta::render_nft_delta;
pub use netlink::Batch;

use element::{Element, Field, Fields, l4};
use netlink::ElementBatch;

/// Family and name of our table.
pub const NFT_TABLE: &str = "inet edgemesh";
/// Our table's name alone (netlink and listings name the family apart).
const NFT_TABLE_NAME: &str = "edgemesh";

/// The whole transaction for one sync: create the table if absent (so the delete cannot fail),
/// delete it, define it anew. The kernel applies all of it or none of it.
pub fn render_nft(rules: &RuleSet) -> String {
    let mut out = String::with_capacity(256 + rules.elements.len() * 32);
    out.push_str(&render_nft_cleanup());
    render_table(&mut out, rules, None);
    out
}

/// `table inet edgemesh { sets, maps, chains }`; the elements go inline, or into `bulk`.
fn render_table(out: &mut String, rules: &RuleSet, mut bulk: Option<&mut ElementBatch>) {
    let _ = writeln!(out, "table {NFT_TABLE} {{");
    render_intercepted_sets(out, rules, bulk.as_deref_mut());
    fast::render(out, rules, bulk);
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
}

/// Removes our table, whether or not it exists.
pub fn render_nft_cleanup() -> String {
    format!("table {NFT_TABLE} {{}}\ndelete table {NFT_TABLE}\n")
}

fn set_name(family: IpFamily) -> &'static str {
    family.pick("svc4", "svc6")
}

/// The set an intercepted frontend is an element of (by family, and whether it is a node port),
/// and the element: what a full rewrite lists and an incremental sync adds or deletes.
fn intercepted_element(f: &Frontend) -> (&'static str, Element) {
    let family = IpFamily::of(&f.ip);
    let (protocol, port) = (Field::Proto(f.protocol), Field::Port(f.port));
    match f.is_node_port() {
        true => (
            node_port_set_name(family),
            Element::set(Fields::two(protocol, port)),
        ),
        false => (
            set_name(family),
            Element::set(Fields::three(Field::Addr(f.ip), protocol, port)),
        ),
    }
}

/// The sets of intercepted frontends, per family: `svcN` (address, protocol, port) and
/// `nodeportN` (protocol and port only: the address is any local one).
fn render_intercepted_sets(out: &mut String, rules: &RuleSet, mut bulk: Option<&mut ElementBatch>) {
    for node_port in [false, true] {
        for family in [IpFamily::V4, IpFamily::V6] {
            let elements = rules
                .elements
                .keys()
                .filter(|f| IpFamily::of(&f.ip) == family && f.is_node_port() == node_port)
                .map(|f| intercepted_element(f).1);
            let (name, declaration) = match node_port {
                false => (
                    set_name(family),
                    format!("type {} . inet_proto . inet_service", addr_type(family)),
                ),
                true => (
                    node_port_set_name(family),
                    "type inet_proto . inet_service".to_string(),
                ),
            };
            render_collection(
                out,
                "set",
                name,
                &declaration,
                elements,
                bulk.as_deref_mut(),
            );
        }
    }
}

fn node_port_set_name(family: IpFamily) -> &'static str {
    family.pick("nodeport4", "nodeport6")
}

/// Loopback is not a node-port address (as in kube-proxy's nftables mode).
fn loopback(family: IpFamily) -> &'static str {
    family.pick("127.0.0.0/8", "::1")
}

/// One set or map of our table: `kind name {`, its `declaration` (type, flags), `elements = { a,
/// b, ... }` unless there are none or they go to the `bulk` batch instead, `}`.
fn render_collection(
    out: &mut String,
    kind: &str,
    name: &str,
    declaration: &str,
    elements: impl Iterator<Item = Element>,
    bulk: Option<&mut ElementBatch>,
) {
    let _ = writeln!(out, "\t{kind} {name} {{\n\t\t{declaration}");
    match bulk {
        Some(batch) => batch.fill(name, elements),
        None => render_elements(out, elements),
    }
    out.push_str("\t}\n");
}

fn render_elements(out: &mut String, elements: impl Iterator<Item = Element>) {
    let mut elements = elements.peekable();
    if elements.peek().is_some() {
        out.push_str("\t\telements = {");
        for (i, element) in elements.enumerate() {
            let sep = if i == 0 { " " } else { ",\n\t\t\t" };
            let _ = write!(out, "{sep}{element}");
        }
        out.push_str(" }\n");
    }
}

/// The nft type of one family's addresses.
fn addr_type(family: IpFamily) -> &'static str {
    family.pick("ipv4_addr", "ipv6_addr")
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
    family.pick("ip", "ip6")
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
        Action::SnatToDestination => match rule.when {
            Match::FastPathReply { family } => {
                format!("snat {0} to {0} daddr", addr(family))
            }
            // Rule generation pairs this action with FastPathReply only.
            _ => "accept".into(),
        },
        Action::Drop => "drop".into(),
    }
}

/// A full rewrite at least this often even when every change could be incremental: whatever
/// else changed our table since (a person, a tool) is undone within this bound. At 100,000
/// services a rewrite costs ~3.5 s of CPU, so this is ~0.6 % of one core.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(600);

/// A full rewrite with more set and map elements than this sends them over netlink
/// ([`render_nft_bulk`]) instead of as `nft` text (~6 µs of `nft`'s parsing per element).
pub const BULK_ELEMENTS: usize = 20_000;

/// Applies rule sets with `nft -f -`: the whole table the first time, then only the set and map
/// elements that changed ([`render_nft_delta`]), with a full rewrite again when the chains
/// change, after a failed transaction, after cleanup and every [`RESYNC_INTERVAL`].
#[derive(Debug)]
pub struct NftBackend {
    runner: Arc<dyn CommandRunner>,
    /// What the kernel holds since our last successful transaction; `None` when we do not know
    /// (before the first, after a failure or cleanup): the next apply rewrites the table.
    applied: Option<RuleSet>,
    /// When the last full rewrite succeeded.
    rewritten: Option<Instant>,
    resync: Duration,
    /// Element count above which a full rewrite sends the elements over netlink.
    bulk_elements: usize,
}

impl NftBackend {
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            runner,
            applied: None,
            rewritten: None,
            resync: RESYNC_INTERVAL,
            bulk_elements: BULK_ELEMENTS,
        }
    }

    /// Sends a full rewrite's elements over netlink above `elements` (tests lower
    /// [`BULK_ELEMENTS`] to 0 to take that path with a few services).
    pub fn with_bulk_elements(mut self, elements: usize) -> Self {
        self.bulk_elements = elements;
        self
    }

    /// Rewrites the whole table at least every `every` (tests shorten [`RESYNC_INTERVAL`]).
    pub fn with_resync(mut self, every: Duration) -> Self {
        self.resync = every;
        self
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

    fn run(&self, text: &str) -> Result<()> {
        self.runner.run("nft", &["-f", "-"], Some(text)).map(|_| ())
    }

    /// The element-only transaction from what the kernel holds to `rules`, when one can express
    /// the change and no full rewrite is due.
    fn delta_to(&self, rules: &RuleSet) -> Option<String> {
        match (&self.applied, self.rewrite_due()) {
            (Some(applied), false) => render_nft_delta(applied, rules),
            _ => None,
        }
    }

    fn rewrite_due(&self) -> bool {
        self.rewritten.is_none_or(|at| at.elapsed() >= self.resync)
    }

    /// Sends `rules` as an incremental transaction when possible, else (or when that fails) as
    /// a full rewrite; returns the bytes sent and whether it was incremental.
    fn send(&mut self, rules: &RuleSet) -> Result<(usize, bool)> {
        if let Some(delta) = self.delta_to(rules) {
            if delta.is_empty() {
                return Ok((0, true));
            }
            match self.run(&delta) {
                Ok(()) => return Ok((delta.len(), true)),
                // Someone changed our table behind our back, or the kernel refused: what it
                // holds is unknown, and the rewrite replaces all of it.
                Err(error) => tracing::warn!(
                    %error,
                    "incremental nftables update failed; rewriting the whole table"
                ),
            }
        }
        self.applied = None;
        let bytes = match element_count(rules) > self.bulk_elements {
            true => self.rewrite_bulk(rules)?,
            false => self.rewrite(rules)?,
        };
        self.rewritten = Some(Instant::now());
        Ok((bytes, false))
    }

    fn rewrite(&self, rules: &RuleSet) -> Result<usize> {
        let text = render_nft(rules);
        self.run(&text)?;
        Ok(text.len())
    }

    /// The table as text, its elements as one netlink batch ([`render_nft_bulk`]); when any
    /// step fails (listing the table, a set of another type left by another version, a kernel
    /// that lays elements out otherwise), the one text transaction instead.
    fn rewrite_bulk(&self, rules: &RuleSet) -> Result<usize> {
        self.try_rewrite_bulk(rules).or_else(|error| {
            tracing::warn!(%error, "nftables rewrite over netlink failed; sending it as text");
            self.rewrite(rules)
        })
    }

    fn try_rewrite_bulk(&self, rules: &RuleSet) -> Result<usize> {
        let started = Instant::now();
        let existing = Existing::list(&*self.runner)?;
        let (text, batch) = render_nft_bulk(rules, &existing);
        let rendered = started.elapsed();
        self.run(&text)?;
        let declared = started.elapsed();
        self.runner.nftables_batch(&batch)?;
        tracing::debug!(
            render_ms = rendered.as_secs_f64() * 1e3,
            text_ms = (declared - rendered).as_secs_f64() * 1e3,
            netlink_ms = (started.elapsed() - declared).as_secs_f64() * 1e3,
            batch_bytes = batch.bytes.len(),
            "nftables table written, its elements over netlink"
        );
        Ok(text.len() + batch.bytes.len())
    }
}

/// Set and map elements of a full rewrite: intercepted frontends, fast-path frontends and their
/// map elements (one per backend).
fn element_count(rules: &RuleSet) -> usize {
    let map_elements: usize = rules.fast.values().map(|r| r.backends.len()).sum();
    rules.elements.len() + rules.fast.len() + map_elements
}

impl RuleBackend for NftBackend {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn kind(&self) -> crate::backend::BackendKind {
        crate::backend::BackendKind::Nftables
    }

    fn apply(&mut self, rules: RuleSet) -> Result<SyncStats> {
        let started = Instant::now();
        let (bytes, incremental) = self.send(&rules)?;
        let stats = SyncStats {
            backend: self.name(),
            frontends: rules.elements.len(),
            bytes,
            duration: started.elapsed(),
            fast_path: rules.fast.len(),
            order_repaired: false,
            incremental,
        };
        self.applied = Some(rules);
        Ok(stats)
    }

    fn cleanup(&mut self) -> Result<()> {
        self.applied = None;
        self.run(&render_nft_cleanup())
    }

    fn applied(&self) -> Option<&RuleSet> {
        self.applied.as_ref()
    }

    /// Priorities, not positions, order our chains ahead of kube-proxy: nothing to repair. The
    /// periodic full rewrite happens here when no change came for [`RESYNC_INTERVAL`].
    fn repair(&mut self) -> Result<bool> {
        if self.rewrite_due()
            && let Some(rules) = self.applied.take()
        {
            self.apply(rules)?;
            tracing::debug!("nftables table rewritten (periodic resync)");
        }
        Ok(false)
    }
}
