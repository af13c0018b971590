//! The checks: pure functions from what was gathered to PASS/WARN/FAIL with a one-line fix.

pub mod agent;
pub mod api;
pub mod dns;
pub mod hub;
pub mod port;
pub mod rules;
pub mod tunnel;

use crate::gather::Facts;
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
    out.push(tunnel::peers(
        plan.tunnel.as_ref(),
        &plan.node_name,
        &facts.peers,
        &facts.relays,
    ));
    out.push(hub::status(plan.hub_admin, facts.hub_readyz.as_ref()));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::plan::{DnsPlan, Plan, Relay, TunnelPlan};

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
