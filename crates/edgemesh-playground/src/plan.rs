//! The playground's topology as data: namespaces, bridges, addresses and routes. Pure: the
//! same prefix always gives the same names, so `down` can find everything after a crash.
//!
//! ```text
//!                      internet 203.0.113.0/24 (bridge "inet")
//!        ┌──────────────────────┬───────────┴──────────────┐
//!   cloud .10            router-a .1 (NAT)          router-b .2 (NAT)
//!                               │                          │
//!                 LAN A 192.0.2.0/24 ("lan-a")   LAN B 198.51.100.0/24 ("lan-b")
//!                 ├ edge-a1 .11                   └ edge-b1 .11
//!                 └ edge-a2 .12
//! ```
//! Edge nodes reach the cloud through their router's MASQUERADE; nothing reaches into a LAN
//! from outside, so LAN A ↔ LAN B and cloud → edge need the tunnel.

use std::net::Ipv4Addr;

use crate::PlaygroundError;

/// The part of the network a node sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Site {
    Cloud,
    LanA,
    LanB,
}

impl Site {
    pub fn label(self) -> &'static str {
        match self {
            Site::Cloud => "cloud",
            Site::LanA => "LAN A",
            Site::LanB => "LAN B",
        }
    }
}

/// A Kubernetes node of the playground: a namespace running an agent and pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpec {
    /// The node name (agent `--node-name`, EndpointSlice `nodeName`).
    pub name: &'static str,
    pub site: Site,
    pub ip: Ipv4Addr,
    /// Default route (the LAN's router); `None` on the cloud node, which is on the internet.
    pub gateway: Option<Ipv4Addr>,
}

/// A NAT router between a LAN and the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterSpec {
    pub name: &'static str,
    pub lan: Site,
    pub lan_ip: Ipv4Addr,
    pub wan_ip: Ipv4Addr,
}

/// One bridge in the switch namespace and its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: &'static str,
    pub prefix_len: u8,
}

pub const INTERNET: BridgeSpec = BridgeSpec {
    name: "inet",
    prefix_len: 24,
};
pub const LAN_A: BridgeSpec = BridgeSpec {
    name: "lan-a",
    prefix_len: 24,
};
pub const LAN_B: BridgeSpec = BridgeSpec {
    name: "lan-b",
    prefix_len: 24,
};

/// The nodes, in the order they are built and shown.
pub const NODES: [NodeSpec; 4] = [
    NodeSpec {
        name: "cloud",
        site: Site::Cloud,
        ip: Ipv4Addr::new(203, 0, 113, 10),
        gateway: None,
    },
    NodeSpec {
        name: "edge-a1",
        site: Site::LanA,
        ip: Ipv4Addr::new(192, 0, 2, 11),
        gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
    },
    NodeSpec {
        name: "edge-a2",
        site: Site::LanA,
        ip: Ipv4Addr::new(192, 0, 2, 12),
        gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
    },
    NodeSpec {
        name: "edge-b1",
        site: Site::LanB,
        ip: Ipv4Addr::new(198, 51, 100, 11),
        gateway: Some(Ipv4Addr::new(198, 51, 100, 1)),
    },
];

pub const ROUTERS: [RouterSpec; 2] = [
    RouterSpec {
        name: "router-a",
        lan: Site::LanA,
        lan_ip: Ipv4Addr::new(192, 0, 2, 1),
        wan_ip: Ipv4Addr::new(203, 0, 113, 1),
    },
    RouterSpec {
        name: "router-b",
        lan: Site::LanB,
        lan_ip: Ipv4Addr::new(198, 51, 100, 1),
        wan_ip: Ipv4Addr::new(203, 0, 113, 2),
    },
];

/// The Service range: routed inside every node only (connect() needs a route before the
/// agent's netfilter output hook can redirect it).
pub const SERVICE_CIDR: &str = "10.96.0.0/12";

/// The bridge a site's hosts plug into.
pub fn bridge_of(site: Site) -> BridgeSpec {
    match site {
        Site::Cloud => INTERNET,
        Site::LanA => LAN_A,
        Site::LanB => LAN_B,
    }
}

/// Names derived from one prefix: every namespace is `<prefix>-<role>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    prefix: String,
}

impl Plan {
    /// A plan for `prefix`: 1–8 lowercase ASCII letters or digits, starting with a letter (the
    /// names must stay short, predictable and safe in file paths).
    pub fn new(prefix: &str) -> Result<Plan, PlaygroundError> {
        let valid = (1..=8).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !valid {
            return Err(PlaygroundError::InvalidPrefix(prefix.to_owned()));
        }
        Ok(Plan {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace of a node or router (`emp-edge-a1`).
    pub fn netns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// The namespace holding the bridges.
    pub fn switch_netns(&self) -> String {
        self.netns("switch")
    }

    /// Every namespace of the plan, switch first (it goes last on removal).
    pub fn all_netns(&self) -> Vec<String> {
        let mut all = vec![self.switch_netns()];
        all.extend(ROUTERS.iter().map(|r| self.netns(r.name)));
        all.extend(NODES.iter().map(|n| self.netns(n.name)));
        all
    }

    /// Whether `name` is a namespace this prefix could have created (also from an older run).
    pub fn owns_netns(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|role| !role.is_empty())
    }

    /// The state directory of this prefix.
    pub fn state_dir(&self) -> std::path::PathBuf {
        std::path::Path::new(crate::STATE_ROOT).join(&self.prefix)
    }
}

/// The node called `name`.
pub fn node(name: &str) -> Option<&'static NodeSpec> {
    NODES.iter().find(|n| n.name == name)
}

/// The switch-side veth port of a host's interface (≤ 15 characters).
pub fn switch_port(host: &str, wan: bool) -> String {
    let short = host.replace("router-", "r").replace("edge-", "e");
    if wan {
        format!("{short}-wan")
    } else {
        format!("{short}-p")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated() {
        let cases = [
            ("emp", true),
            ("e2e1", true),
            ("abcdefgh", true),
            ("", false),
            ("abcdefghi", false),
            ("1abc", false),
            ("Emp", false),
            ("em-p", false),
            ("em/p", false),
        ];
        for (prefix, ok) in cases {
            assert_eq!(Plan::new(prefix).is_ok(), ok, "{prefix:?}");
        }
    }

    #[test]
    fn names_are_deterministic_and_owned() {
        let plan = Plan::new("emp").unwrap();
        assert_eq!(plan.netns("edge-a1"), "emp-edge-a1");
        let all = plan.all_netns();
        assert_eq!(all.len(), 7);
        assert!(all.iter().all(|n| plan.owns_netns(n)));
        for (name, owned) in [
            ("emp-x", true),
            ("emp-", false),
            ("emp", false),
            ("empx-a", false),
            ("em-a", false),
        ] {
            assert_eq!(plan.owns_netns(name), owned, "{name}");
        }
    }

    #[test]
    fn switch_ports_fit_interface_names_and_are_unique() {
        let mut ports: Vec<String> = NODES.iter().map(|n| switch_port(n.name, false)).collect();
        for r in ROUTERS {
            ports.push(switch_port(r.name, false));
            ports.push(switch_port(r.name, true));
        }
        assert!(ports.iter().all(|p| p.len() <= 15), "{ports:?}");
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
    }

    #[test]
    fn addresses_sit_in_their_site_subnet() {
        let subnet = |site| match site {
            Site::Cloud => [203, 0, 113],
            Site::LanA => [192, 0, 2],
            Site::LanB => [198, 51, 100],
        };
        for n in NODES {
            assert_eq!(n.ip.octets()[..3], subnet(n.site), "{}", n.name);
            if let Some(gw) = n.gateway {
                assert_eq!(gw.octets()[..3], subnet(n.site), "{}", n.name);
            }
        }
        for r in ROUTERS {
            assert_eq!(r.lan_ip.octets()[..3], subnet(r.lan));
            assert_eq!(r.wan_ip.octets()[..3], subnet(Site::Cloud));
        }
    }
}
