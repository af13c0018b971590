//! Small network topologies built from namespaces: hosts, LANs (bridges), veth links, routes and
//! NAT routers.
//!
//! Every LAN bridge lives in a dedicated *switch* namespace owned by the [`Topology`], never in
//! the host's own namespace, and veth pairs are created from inside the switch namespace, so
//! nothing ever appears in the machine's own network stack. Dropping the topology deletes its
//! namespaces, which removes their links with them.

use std::io;
use std::sync::Arc;

use crate::netns::Netns;

/// One machine of a topology: a network namespace. Clones share the same namespace, which is
/// deleted when the last clone and the topology are dropped.
#[derive(Debug, Clone)]
pub struct Host {
    label: String,
    ns: Arc<Netns>,
}

impl Host {
    /// The label given to [`Topology::host`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The host's namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }
}

impl std::ops::Deref for Host {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

/// A LAN: a Linux bridge in the topology's switch namespace.
#[derive(Debug, Clone)]
pub struct Lan {
    label: String,
    bridge: String,
}

impl Lan {
    /// The label given to [`Topology::lan`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The bridge's interface name inside the switch namespace.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }
}

/// How a router rewrites sources on its WAN side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// MASQUERADE keeping source ports where it can (a "cone-like" home router).
    Masquerade,
    /// MASQUERADE with `fully-random` source ports (symmetric-like NAT: hole punching is hard).
    MasqueradeFullyRandom,
}

/// A host that forwards between a LAN side and a WAN side and NATs what leaves on the WAN side.
#[derive(Debug, Clone)]
pub struct Router {
    /// The router's namespace.
    pub host: Host,
    /// Interface on the LAN (private) side.
    pub lan_if: String,
    /// Interface on the WAN ("internet") side.
    pub wan_if: String,
    /// The router's LAN address, without prefix length: the LAN hosts' gateway.
    pub lan_addr: String,
    /// The router's WAN address, without prefix length: what the internet sees as source.
    pub wan_addr: String,
}

/// A set of hosts, LANs and links, all removed on drop.
#[derive(Debug)]
pub struct Topology {
    tag: String,
    switch: Netns,
    hosts: Vec<Host>,
    next_bridge: usize,
    next_port: usize,
}

impl Topology {
    /// A new, empty topology; `tag` appears in every namespace name (keep it short).
    pub fn new(tag: &str) -> io::Result<Topology> {
        Ok(Topology {
            tag: tag.to_owned(),
            switch: Netns::new(&format!("{tag}-sw"))?,
            hosts: Vec::new(),
            next_bridge: 0,
            next_port: 0,
        })
    }

    /// The namespace holding the LAN bridges (useful for `tcpdump` while debugging).
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// Adds a host (a new namespace with `lo` up).
    pub fn host(&mut self, label: &str) -> io::Result<Host> {
        let ns = Netns::new(&format!("{}-{label}", self.tag))?;
        let host = Host {
            label: label.to_owned(),
            ns: Arc::new(ns),
        };
        self.hosts.push(host.clone());
        Ok(host)
    }

    /// Adds a LAN: a bridge, up, in the switch namespace.
    pub fn lan(&mut self, label: &str) -> io::Result<Lan> {
        let bridge = format!("br{}", self.next_bridge);
        self.next_bridge += 1;
        self.switch
            .exec_ok("ip", &["link", "add", &bridge, "type", "bridge"])?;
        self.switch.exec_ok("ip", &["link", "set", &bridge, "up"])?;
        Ok(Lan {
            label: label.to_owned(),
            bridge,
        })
    }

    /// Plugs `host` into `lan` with a veth whose host end gets `cidr` (e.g. "192.0.2.10/24").
    /// Returns the host-side interface name.
    pub fn attach(&mut self, host: &Host, lan: &Lan, cidr: &str) -> io::Result<String> {
        let port = self.port_name();
        let host_if = next_if_name(host)?;
        let (sw, hn) = (self.switch.name().to_owned(), host.name().to_owned());
        run_ip(&[
            "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", &host_if, "netns", &hn,
        ])?;
        self.switch
            .exec_ok("ip", &["link", "set", &port, "master", lan.bridge(), "up"])?;
        configure_if(host, &host_if, cidr)?;
        Ok(host_if)
    }

    /// Links two hosts directly with a veth pair; returns the interface names (a side, b side).
    pub fn link(
        &mut self,
        a: &Host,
        a_cidr: &str,
        b: &Host,
        b_cidr: &str,
    ) -> io::Result<(String, String)> {
        let a_if = next_if_name(a)?;
        let b_if = next_if_name(b)?;
        let (an, bn) = (a.name().to_owned(), b.name().to_owned());
        // Created from inside `a`, peer placed in `b`: the machine's own namespace never sees it.
        run_ip(&[
            "-n", &an, "link", "add", &a_if, "type", "veth", "peer", "name", &b_if, "netns", &bn,
        ])?;
        configure_if(a, &a_if, a_cidr)?;
        configure_if(b, &b_if, b_cidr)?;
        Ok((a_if, b_if))
    }

    /// `ip route add <dest> via <via>` inside `host` (`dest` may be "default").
    pub fn route(&self, host: &Host, dest: &str, via: &str) -> io::Result<()> {
        host.exec_ok("ip", &["route", "replace", dest, "via", via])
            .map(drop)
    }

    /// Sets `host`'s default route via `via`.
    pub fn default_route(&self, host: &Host, via: &str) -> io::Result<()> {
        self.route(host, "default", via)
    }

    /// Adds a router between `lan` (address `lan_cidr`) and `wan` (address `wan_cidr`): IP
    /// forwarding on, and MASQUERADE of everything leaving on the WAN interface.
    pub fn router(
        &mut self,
        label: &str,
        lan: &Lan,
        lan_cidr: &str,
        wan: &Lan,
        wan_cidr: &str,
        nat: Nat,
    ) -> io::Result<Router> {
        let host = self.host(label)?;
        let lan_if = self.attach(&host, lan, lan_cidr)?;
        let wan_if = self.attach(&host, wan, wan_cidr)?;
        enable_forwarding(&host)?;
        masquerade(&host, &wan_if, nat)?;
        Ok(Router {
            host,
            lan_if,
            wan_if,
            lan_addr: strip_prefix_len(lan_cidr),
            wan_addr: strip_prefix_len(wan_cidr),
        })
    }

    fn port_name(&mut self) -> String {
        let name = format!("p{}", self.next_port);
        self.next_port += 1;
        name
    }
}

/// Turns on IPv4 forwarding inside `host` (per-namespace sysctl).
pub fn enable_forwarding(host: &Netns) -> io::Result<()> {
    host.exec_ok("sysctl", &["-q", "-w", "net.ipv4.ip_forward=1"])
        .map(drop)
}

/// Installs (with nft, inside `host`) a MASQUERADE of everything leaving on `out_if`.
pub fn masquerade(host: &Netns, out_if: &str, nat: Nat) -> io::Result<()> {
    let flags = match nat {
        Nat::Masquerade => "",
        Nat::MasqueradeFullyRandom => " fully-random",
    };
    let rules = format!(
        "table ip testkit_nat {{\n  chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;\n    oifname \"{out_if}\" masquerade{flags}\n  }}\n}}\n"
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nat.nft");
    std::fs::write(&path, rules)?;
    let path = path.to_string_lossy().into_owned();
    host.exec_ok("nft", &["-f", &path]).map(drop)
}

/// The next free `ethN` name in `host` (always <= 15 chars).
fn next_if_name(host: &Netns) -> io::Result<String> {
    let links = host.exec_ok("ip", &["-o", "link", "show"])?;
    let taken: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect();
    let free = (0..1000)
        .map(|i| format!("eth{i}"))
        .find(|n| !taken.contains(&n.as_str()));
    free.ok_or_else(|| io::Error::other(format!("no free ethN name in {}", host.name())))
}

fn configure_if(host: &Netns, ifname: &str, cidr: &str) -> io::Result<()> {
    host.exec_ok("ip", &["addr", "add", cidr, "dev", ifname])?;
    host.exec_ok("ip", &["link", "set", ifname, "up"]).map(drop)
}

fn run_ip(args: &[&str]) -> io::Result<String> {
    crate::netns::run_ok(std::process::Command::new("ip").args(args))
}

fn strip_prefix_len(cidr: &str) -> String {
    cidr.split('/').next().unwrap_or(cidr).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_prefix_len_keeps_the_address() {
        assert_eq!(strip_prefix_len("192.0.2.1/24"), "192.0.2.1");
        assert_eq!(strip_prefix_len("192.0.2.1"), "192.0.2.1");
    }
}
