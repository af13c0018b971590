//! The checks: pure functions from what was gathered to PASS/WARN/FAIL with a one-line fix.

pub mod agent;
pub mod api;
pub mod dns;
pub mod hub;
pub mod port;
pub mod rules;
pub mod tunnel;

use crate::gather::{Facts, Fetched};
use crate::plan::Plan;
use crate::report::Finding;

/// Every check, in the order they are printed.
pub fn all(plan: &Plan, facts: &Facts) -> Vec<Finding> {
    let mut out = vec![
        agent::config(plan),
        agent::health(plan.admin_addr, &facts.healthz),
        agent::ready(&facts.readyz),
        rules::order(plan.proxy_port, &facts.nft, &facts.iptables, &facts.metrics),
        port::ephemeral(plan.proxy_port, &facts.port_range, &facts.reserved_ports),
        dns::server(facts.dns.as_ref()),
        dns::resolv_conf(
            plan.dns.as_ref(),
            &facts.resolv_conf.0,
            &facts.resolv_conf.1,
        ),
    ];
    out.extend(api::access(facts.api.as_ref()));
    out.push(tunnel::psk(plan.tunnel.as_ref(), facts.psk.as_ref()));
    out.extend(tunnel::relays(
        plan.tunnel.as_ref(),
        &plan.node_name,
        &facts.relays,
    ));
    let handshakes = metric(&facts.metrics, tunnel::HANDSHAKE_FAILURES);
    out.push(tunnel::peers(
        plan.tunnel.as_ref(),
        &plan.node_name,
        &facts.peers,
        &facts.relays,
        handshakes,
    ));
    out.push(hub::status(plan.hub_admin, facts.hub_readyz.as_ref()));
    out
}

/// The value of an unlabelled sample `name` in the agent's `/metrics` text.
pub fn metric(metrics: &Fetched, name: &str) -> Option<u64> {
    let (200, text) = metrics.as_ref().ok()? else {
        return None;
    };
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .find_map(|rest| rest.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v as u64)
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::plan::{DnsPlan, Plan, Relay, TunnelPlan};

    #[test]
    fn metric_values_are_read_by_exact_name() {
        let text = "# TYPE a counter\na_total 3\na_total_x 9\nb{path=\"x\"} 1\nc NaN\n# EOF\n";
        let fetched = Ok((200, text.to_owned()));
        assert_eq!(super::metric(&fetched, "a_total"), Some(3));
        assert_eq!(super::metric(&fetched, "b"), None);
        assert_eq!(super::metric(&fetched, "c"), None);
        assert_eq!(super::metric(&Ok((503, text.to_owned())), "a_total"), None);
        assert_eq!(super::metric(&Err("down".into()), "a_total"), None);
    }

    proptest::proptest! {
        /// Whatever the node, the agent or a server answers, every check returns a finding.
        #[test]
        fn no_input_panics(text in ".{0,200}", status in 0u16..600, json in proptest::sample::select(vec![
            "[]", "{}", "[{}]", "[{\"isRelay\": 1}]", "{\"nftables\": [{\"chain\": {\"hook\": 1, \"prio\": \"x\"}}]}",
            "{\"services\": {\"/\": 1}}", "*nat\n-A PREROUTING\n-A\n:",
        ])) {
            let plan = plan();
            for body in [text.as_str(), json] {
                let fetched: crate::gather::Fetched = Ok((status, body.to_owned()));
                let facts = crate::gather::Facts {
                    healthz: fetched.clone(),
                    readyz: fetched.clone(),
                    snapshot: fetched.clone(),
                    peers: fetched.clone(),
                    metrics: fetched.clone(),
                    nft: Ok(body.to_owned()),
                    iptables: Ok(body.to_owned()),
                    port_range: Ok(body.to_owned()),
                    reserved_ports: Ok(body.to_owned()),
                    dns: None,
                    resolv_conf: ("/etc/resolv.conf".into(), Ok(body.to_owned())),
                    api: None,
                    psk: Some(Ok(body.len() as u64)),
                    relays: Vec::new(),
                    hub_readyz: Some(fetched.clone()),
                };
                let mut plan = plan.clone();
                plan.hub_admin = Some("127.0.0.1:10267".parse().unwrap());
                let findings = super::all(&plan, &facts);
                proptest::prop_assert!(findings.len() >= 12);
                let _ = crate::report::table(&findings);
                let _ = crate::report::json(&findings);
            }
        }
    }

    /// A plan with every module on, one relay `relay-1` at 192.0.2.1:20006.
    pub fn plan() -> Plan {
        Plan {
            source: "/etc/edgemesh/config/edgemesh-agent.yaml".into(),
            node_name: "edge-1".into(),
            admin_addr: "127.0.0.1:10557".parse().unwrap(),
            proxy_port: Some(40001),
            dns: Some(DnsPlan {
                addr: "169.254.96.16:53".parse().unwrap(),
                cluster_domain: "cluster.local".into(),
            }),
            api: None,
            tunnel: Some(TunnelPlan {
                listen_port: 20006,
                psk_path: Some("/etc/edgemesh/psk".into()),
                relays: vec![Relay {
                    node_name: "relay-1".into(),
                    addrs: vec!["192.0.2.1:20006".parse().unwrap()],
                }],
            }),
            hub_admin: None,
            warnings: Vec::new(),
        }
    }
}
