//! Building the topology of [`crate::plan`] with `ip` and `nft`, all inside namespaces.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::PlaygroundError;
use crate::host::{exec_in, ip, ip_in};
use crate::plan::{self, BridgeSpec, NODES, Plan, ROUTERS, SERVICE_CIDR};

/// Creates every namespace, bridge, link, route and NAT rule of the plan. Returns the
/// namespaces created and the files written outside the state directory.
pub(crate) fn topology(plan: &Plan) -> Result<(Vec<String>, Vec<PathBuf>), PlaygroundError> {
    let switch = plan.switch_netns();
    add_netns(&switch)?;
    for bridge in [plan::INTERNET, plan::LAN_A, plan::LAN_B] {
        ip_in(&switch, &["link", "add", bridge.name, "type", "bridge"])?;
        ip_in(&switch, &["link", "set", bridge.name, "up"])?;
    }
    for router in ROUTERS {
        let ns = plan.netns(router.name);
        add_netns(&ns)?;
        let lan = plan::bridge_of(router.lan);
        attach(plan, &ns, router.name, false, lan, router.lan_ip, "eth0")?;
        attach(
            plan,
            &ns,
            router.name,
            true,
            plan::INTERNET,
            router.wan_ip,
            "eth1",
        )?;
        exec_in(&ns, "sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])?;
        // Every "no route" (LAN A ↔ LAN B without the tunnel) answered at once: with the
        // default rate limit, a burst of proxy dials to the other LAN would hang in connect
        // instead of failing over to a reachable replica. Per-namespace sysctl.
        exec_in(&ns, "sysctl", &["-q", "-w", "net.ipv4.icmp_ratelimit=0"])?;
        masquerade(plan, &ns, "eth1")?;
    }
    let mut files = Vec::new();
    for node in NODES {
        let ns = plan.netns(node.name);
        add_netns(&ns)?;
        let bridge = plan::bridge_of(node.site);
        attach(plan, &ns, node.name, false, bridge, node.ip, "eth0")?;
        match node.gateway {
            Some(gw) => ip_in(&ns, &["route", "add", "default", "via", &gw.to_string()])?,
            None => ip_in(&ns, &["route", "add", SERVICE_CIDR, "dev", "eth0"])?,
        };
        files.push(resolv_conf(&ns)?);
    }
    Ok((plan.all_netns(), files))
}

fn add_netns(name: &str) -> Result<(), PlaygroundError> {
    ip(&["netns", "add", name])?;
    ip_in(name, &["link", "set", "lo", "up"]).map(drop)
}

/// A veth from the switch namespace's bridge to `ifname` in `ns`, with `addr`.
fn attach(
    plan: &Plan,
    ns: &str,
    host: &str,
    wan: bool,
    bridge: BridgeSpec,
    addr: Ipv4Addr,
    ifname: &str,
) -> Result<(), PlaygroundError> {
    let switch = plan.switch_netns();
    let port = plan::switch_port(host, wan);
    // Created inside the switch namespace, peer moved into `ns`: never in the host's stack.
    ip_in(
        &switch,
        &[
            "link", "add", &port, "type", "veth", "peer", "name", ifname, "netns", ns,
        ],
    )?;
    ip_in(
        &switch,
        &["link", "set", &port, "master", bridge.name, "up"],
    )?;
    let cidr = format!("{addr}/{}", bridge.prefix_len);
    ip_in(ns, &["addr", "add", &cidr, "dev", ifname])?;
    ip_in(ns, &["link", "set", ifname, "up"]).map(drop)
}

/// What a home router does at its WAN (nft, inside the router): MASQUERADE of everything
/// leaving (keeps a LAN host's source port when free, and keeps a host's mapping for every
/// destination while one of its flows lives: the mapping a hole punch goes through), and drop
/// connections from the internet that nothing inside asked for. Dropped, not refused: a router
/// whose own stack answers such a SYN with a RST kills the TCP simultaneous open of every hole
/// punch (the first SYN reaches the far router before that side's own SYN has opened its
/// mapping), so no TCP path across the LANs could ever be punched.
fn masquerade(plan: &Plan, ns: &str, wan_if: &str) -> Result<(), PlaygroundError> {
    let rules = format!(
        "table ip playground_nat {{\n  chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;\n    oifname \"{wan_if}\" masquerade\n  }}\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    iifname \"{wan_if}\" ct state new drop\n  }}\n}}\n"
    );
    let path = plan.state_dir().join(format!("{ns}.nft"));
    std::fs::write(&path, rules).map_err(|e| PlaygroundError::file(&path, e))?;
    exec_in(ns, "nft", &["-f", &path.display().to_string()]).map(drop)
}

/// `/etc/netns/<ns>/resolv.conf` (see [`crate::agents::resolv_conf`]).
fn resolv_conf(ns: &str) -> Result<PathBuf, PlaygroundError> {
    let dir = Path::new("/etc/netns").join(ns);
    std::fs::create_dir_all(&dir).map_err(|e| PlaygroundError::file(&dir, e))?;
    let path = dir.join("resolv.conf");
    std::fs::write(&path, crate::agents::resolv_conf())
        .map_err(|e| PlaygroundError::file(&path, e))?;
    Ok(path)
}
