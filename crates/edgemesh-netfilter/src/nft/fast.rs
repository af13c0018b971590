//! nft text of the kernel fast path: frontends with one backend are DNATed through one map
//! (`daddr . dport : backend`, no chain: 10,000 of them cost one map, not 10,000 chains); those
//! with several go through a verdict map to a per-frontend chain that DNATs with `numgen`. A set
//! of all of them drives the masquerade rule.

use std::fmt::Write;
use std::net::SocketAddr;

use edgemesh_model::Frontend;

use crate::rules::{FastRoute, IpFamily, RuleSet, Spread};

/// Verdict map of one family: `daddr . l4proto . dport : goto fast_N`.
pub fn map_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "fast4",
        IpFamily::V6 => "fast6",
    }
}

/// DNAT map of one family's single-backend frontends: `daddr . dport : backend addr . port`.
pub fn single_map_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "fastone4",
        IpFamily::V6 => "fastone6",
    }
}

/// Set of one family's fast-path frontends: `daddr . dport` (TCP only).
pub fn set_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "fastsvc4",
        IpFamily::V6 => "fastsvc6",
    }
}

/// The maps, sets and per-frontend chains; nothing when the fast path is off.
pub fn render(out: &mut String, rules: &RuleSet) {
    if rules.options.fast_path.is_none() {
        return;
    }
    for family in [IpFamily::V4, IpFamily::V6] {
        render_map(out, rules, family);
        render_single_map(out, rules, family);
        render_set(out, rules, family);
    }
    for (index, (_, route)) in balanced(rules) {
        let _ = writeln!(
            out,
            "\tchain fast_{index} {{\n\t\tmeta l4proto tcp dnat {} to {} comment \"{}\"\n\t}}",
            family_keyword(route),
            target(route),
            comment(&route.label)
        );
    }
}

fn render_map(out: &mut String, rules: &RuleSet, family: IpFamily) {
    let _ = writeln!(
        out,
        "\tmap {} {{\n\t\ttype {} . inet_proto . inet_service : verdict",
        map_name(family),
        addr_type(family)
    );
    let elements = balanced(rules)
        .filter(|(_, (f, _))| IpFamily::of(&f.ip) == family)
        .map(|(index, (f, _))| format!("{} . tcp . {} : goto fast_{index}", f.ip, f.port));
    render_elements(out, elements);
    out.push_str("\t}\n");
}

/// Frontends with several backends, numbered: the `fast_N` chains.
fn balanced(rules: &RuleSet) -> impl Iterator<Item = (usize, (&Frontend, &FastRoute))> {
    rules
        .fast
        .iter()
        .filter(|(_, route)| route.backends.len() > 1)
        .enumerate()
}

fn render_single_map(out: &mut String, rules: &RuleSet, family: IpFamily) {
    let addr = addr_type(family);
    let _ = writeln!(
        out,
        "\tmap {} {{\n\t\ttype {addr} . inet_service : {addr} . inet_service",
        single_map_name(family),
    );
    let elements = rules
        .fast
        .iter()
        .filter_map(|(f, route)| match route.backends.as_slice() {
            [only] if IpFamily::of(&f.ip) == family => Some(format!(
                "{} . {} : {} . {}",
                f.ip,
                f.port,
                only.ip(),
                only.port()
            )),
            _ => None,
        });
    render_elements(out, elements);
    out.push_str("\t}\n");
}

fn render_set(out: &mut String, rules: &RuleSet, family: IpFamily) {
    let _ = writeln!(
        out,
        "\tset {} {{\n\t\ttype {} . inet_service",
        set_name(family),
        addr_type(family)
    );
    let elements = rules
        .fast
        .keys()
        .filter(|f| IpFamily::of(&f.ip) == family)
        .map(|f| format!("{} . {}", f.ip, f.port));
    render_elements(out, elements);
    out.push_str("\t}\n");
}

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

fn addr_type(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "ipv4_addr",
        IpFamily::V6 => "ipv6_addr",
    }
}

fn family_keyword(route: &FastRoute) -> &'static str {
    match route.backends.first() {
        Some(SocketAddr::V6(_)) => "ip6",
        _ => "ip",
    }
}

/// A `numgen` map over the backends, in the snapshot's order.
fn target(route: &FastRoute) -> String {
    let generator = match route.spread {
        Spread::RoundRobin => "inc",
        Spread::Random => "random",
    };
    let slots: Vec<String> = route
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("{i} : {} . {}", b.ip(), b.port()))
        .collect();
    format!(
        "numgen {generator} mod {} map {{ {} }}",
        route.backends.len(),
        slots.join(", ")
    )
}

/// nft comments are at most 128 bytes and cannot hold a double quote.
fn comment(label: &str) -> String {
    label.replace('"', "").chars().take(120).collect()
}
