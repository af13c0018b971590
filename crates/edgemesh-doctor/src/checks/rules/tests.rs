use super::*;
use crate::report::Status;

/// `nft -j list ruleset` of a node with our table and iptables-nft's nat table (kube-proxy's
/// `KUBE-SERVICES` jump in PREROUTING at -100), as nft 1.0.6 prints it; `{PRIO}` is the
/// priority of that PREROUTING chain.
const NFT: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "edgemesh", "handle": 1}}, {"chain": {"family": "inet", "table": "edgemesh", "name": "prerouting", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -110, "policy": "accept"}}, {"chain": {"family": "inet", "table": "edgemesh", "name": "output", "handle": 2, "type": "nat", "hook": "output", "prio": -110, "policy": "accept"}}, {"table": {"family": "ip", "name": "nat", "handle": 2}}, {"chain": {"family": "ip", "table": "nat", "name": "KUBE-SERVICES", "handle": 1}}, {"chain": {"family": "ip", "table": "nat", "name": "PREROUTING", "handle": 2, "type": "nat", "hook": "prerouting", "prio": {PRIO}, "policy": "accept"}}, {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "handle": 3, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "KUBE-SERVICES"}}]}}]}"#;

const NO_NFT_TABLES: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}]}"#;

fn nft(prio: &str) -> Result<String, String> {
    Ok(NFT.replace("{PRIO}", prio))
}

fn save(prerouting: &[&str], output: &[&str]) -> Result<String, String> {
    let mut text = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
         :KUBE-PORTALS-CONTAINER - [0:0]\n:KUBE-PORTALS-HOST - [0:0]\n",
    );
    for (chain, targets) in [("PREROUTING", prerouting), ("OUTPUT", output)] {
        for target in targets {
            text.push_str(&format!("-A {chain} -j {target}\n"));
        }
    }
    text.push_str("COMMIT\n");
    Ok(text)
}

fn empty_save() -> Result<String, String> {
    Ok("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n".into())
}

fn metrics(repairs: u64) -> Fetched {
    Ok((
        200,
        format!("# TYPE x counter\n{REPAIRS} {repairs}\n# EOF\n"),
    ))
}

const PORT: Option<u16> = Some(40001);

#[test]
fn nftables_ahead_of_kube_proxy_passes() {
    let f = order(PORT, &nft("-100"), &empty_save(), &metrics(0));
    assert_eq!(f.status, Status::Pass, "{f:?}");
    assert!(f.message.contains("inet edgemesh"));
}

#[test]
fn a_kube_proxy_nat_chain_at_or_before_our_priority_fails() {
    for prio in ["-110", "-150"] {
        let f = order(PORT, &nft(prio), &empty_save(), &metrics(0));
        assert_eq!(f.status, Status::Fail, "{prio}: {f:?}");
        assert!(f.message.contains("ip nat chain PREROUTING"), "{f:?}");
        assert!(!f.fix.is_empty());
    }
}

#[test]
fn another_early_nat_chain_only_warns() {
    let json = NFT
        .replace("{PRIO}", "-120")
        .replace("\"KUBE-SERVICES\"}}", "\"OTHER\"}}");
    let f = order(PORT, &Ok(json), &empty_save(), &metrics(0));
    assert_eq!(f.status, Status::Warn, "{f:?}");
}

#[test]
fn iptables_jumps_first_pass() {
    let rules = save(
        &["KUBE-PORTALS-CONTAINER", "KUBE-SERVICES"],
        &["KUBE-PORTALS-HOST", "KUBE-SERVICES"],
    );
    let f = order(PORT, &Ok(NO_NFT_TABLES.into()), &rules, &metrics(0));
    assert_eq!(f.status, Status::Pass, "{f:?}");
    assert!(f.message.contains("iptables"));
}

#[test]
fn kube_services_ahead_of_our_jump_fails_naming_the_chain() {
    let rules = save(
        &["KUBE-SERVICES", "KUBE-PORTALS-CONTAINER"],
        &["KUBE-PORTALS-HOST", "KUBE-SERVICES"],
    );
    let f = order(PORT, &Ok(NO_NFT_TABLES.into()), &rules, &metrics(0));
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert!(f.message.contains("rule 1 of nat PREROUTING"), "{f:?}");
    assert!(
        f.message.contains("KUBE-PORTALS-CONTAINER (rule 2)"),
        "{f:?}"
    );
}

#[test]
fn a_missing_jump_fails() {
    let rules = save(&["KUBE-PORTALS-CONTAINER"], &["KUBE-SERVICES"]);
    let f = order(PORT, &Err("nft: not found".into()), &rules, &metrics(0));
    assert_eq!(f.status, Status::Fail, "{f:?}");
    assert!(f.message.contains("no jump to KUBE-PORTALS-HOST"), "{f:?}");
}

#[test]
fn repairs_seen_in_the_metrics_warn() {
    let f = order(PORT, &nft("-100"), &empty_save(), &metrics(3));
    assert_eq!(f.status, Status::Warn, "{f:?}");
    assert!(f.message.contains("3 times"));
}

#[test]
fn no_rules_fail_unreadable_rules_warn_no_proxy_skips() {
    let f = order(PORT, &Ok(NO_NFT_TABLES.into()), &empty_save(), &metrics(0));
    assert_eq!(f.status, Status::Fail, "{f:?}");
    let f = order(PORT, &Err("a".into()), &Err("b".into()), &metrics(0));
    assert_eq!(f.status, Status::Warn, "{f:?}");
    let f = order(None, &Err("a".into()), &Err("b".into()), &metrics(0));
    assert_eq!(f.status, Status::Skip, "{f:?}");
}

#[test]
fn garbage_never_panics() {
    for junk in [
        "",
        "{",
        "[]",
        r#"{"nftables": 3}"#,
        r#"{"nftables": [{"chain": 1}]}"#,
    ] {
        let f = order(
            PORT,
            &Ok(junk.into()),
            &Ok(junk.into()),
            &Ok((200, junk.into())),
        );
        assert_eq!(f.status, Status::Fail, "{junk}: {f:?}");
    }
}
