//! `nic`, `includeIP` and `excludeIP`: which host addresses the gateway listens on, as
//! EdgeMesh's `GetIPsNeedListen` (pkg/gateway/util.go) picks them.

use std::net::IpAddr;

use edgemesh_model::Cidr;

use crate::EdgeGatewayModule;
use crate::error::{ConfigError, ConfigErrors, Warning};
use crate::validate::rules;

const NIC_KEY: &str = "modules.edgeGateway.nic";
const INCLUDE_KEY: &str = "modules.edgeGateway.includeIP";
const EXCLUDE_KEY: &str = "modules.edgeGateway.excludeIP";
const ADDRESS_ALLOWED: &str =
    "'*' alone, or a comma list of IP addresses and networks, e.g. 192.168.1.56,10.3.0.0/16";

/// The parsed `nic` / `includeIP` / `excludeIP`. A single address is held as a /32 (/128).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddresses {
    /// Interfaces to take addresses from; `None` = every interface (`*` or empty).
    pub nics: Option<Vec<String>>,
    /// Addresses kept; `None` = all (`*` or empty).
    pub include: Option<Vec<Cidr>>,
    /// Addresses dropped after `include`; `*` and empty drop nothing, as in EdgeMesh.
    pub exclude: Vec<Cidr>,
}

impl EdgeGatewayModule {
    /// The three keys parsed; every bad entry is an error naming its key and the entry.
    pub fn listen_addresses(&self) -> Result<ListenAddresses, ConfigErrors> {
        let mut errors = Vec::new();
        let nics = list(&self.nic).map(|names| {
            names
                .into_iter()
                .filter(|name| {
                    // `*` inside a list is no interface: EdgeMesh would look it up and skip it.
                    let ok = *name != "*" && rules::interface_name(name).is_ok();
                    if !ok {
                        let allowed = "'*' alone, or a comma list of interface names, e.g. lo,eth0";
                        errors.push(ConfigError::invalid(NIC_KEY, name, allowed));
                    }
                    ok
                })
                .map(str::to_owned)
                .collect()
        });
        let include = list(&self.include_ip).map(|e| networks(INCLUDE_KEY, e, &mut errors));
        let exclude = list(&self.exclude_ip)
            .map(|e| networks(EXCLUDE_KEY, e, &mut errors))
            .unwrap_or_default();
        if errors.is_empty() {
            Ok(ListenAddresses {
                nics,
                include,
                exclude,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// `None` for `*` or empty (EdgeMesh's "all"); else the comma-separated entries, trimmed,
/// without empty ones (EdgeMesh never matches an empty entry either).
fn list(value: &str) -> Option<Vec<&str>> {
    let value = value.trim();
    if value.is_empty() || value == "*" {
        return None;
    }
    Some(
        value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect(),
    )
}

fn networks(key: &str, entries: Vec<&str>, errors: &mut Vec<ConfigError>) -> Vec<Cidr> {
    entries
        .into_iter()
        .filter_map(|entry| {
            let parsed = network(entry);
            if parsed.is_none() {
                errors.push(ConfigError::invalid(key, entry, ADDRESS_ALLOWED));
            }
            parsed
        })
        .collect()
}

/// An address (as a host network) or a network; Go's `ParseCIDR` also takes host bits.
fn network(entry: &str) -> Option<Cidr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Cidr::new(ip, if ip.is_ipv4() { 32 } else { 128 });
    }
    entry.parse().ok()
}

impl ListenAddresses {
    /// The addresses to listen on among `interfaces` (name, address): IPv4 only, as EdgeMesh
    /// (`GetIPsByName` keeps IPv4), of the chosen interfaces, kept by `include`, then dropped
    /// by `exclude`; sorted, without duplicates.
    pub fn select(&self, interfaces: &[(String, IpAddr)]) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = interfaces
            .iter()
            .filter(|(name, ip)| ip.is_ipv4() && self.takes_nic(name))
            .map(|(_, ip)| *ip)
            .filter(|ip| {
                let included = self
                    .include
                    .as_ref()
                    .is_none_or(|nets| nets.iter().any(|n| n.contains(*ip)));
                included && !self.exclude.iter().any(|n| n.contains(*ip))
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Interfaces named in `nic` with no IPv4 address among `interfaces` (absent, down or
    /// IPv6-only). EdgeMesh logs each and goes on without it; so should the caller.
    pub fn unmatched_nics<'a>(&'a self, interfaces: &[(String, IpAddr)]) -> Vec<&'a str> {
        let has_v4 = |nic: &str| {
            interfaces
                .iter()
                .any(|(name, ip)| name == nic && ip.is_ipv4())
        };
        self.nics
            .iter()
            .flatten()
            .map(String::as_str)
            .filter(|nic| !has_v4(nic))
            .collect()
    }

    fn takes_nic(&self, name: &str) -> bool {
        self.nics
            .as_ref()
            .is_none_or(|nics| nics.iter().any(|n| n == name))
    }

    /// IPv6 entries match nothing: the gateway listens on IPv4 addresses only.
    pub(crate) fn ipv6_notices(&self) -> Vec<Warning> {
        let include = self.include.iter().flatten().map(|n| (INCLUDE_KEY, n));
        let exclude = self.exclude.iter().map(|n| (EXCLUDE_KEY, n));
        include
            .chain(exclude)
            .filter(|(_, net)| is_ipv6(net))
            .map(|(key, net)| {
                let message = format!(
                    "'{net}' is IPv6 and matches nothing: the gateway listens on IPv4 addresses only, as EdgeMesh's"
                );
                Warning::new(key, message)
            })
            .collect()
    }
}

/// `Cidr` does not expose its address; only an IPv6 network is written with colons.
fn is_ipv6(net: &Cidr) -> bool {
    net.to_string().contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nic`, `includeIP`, `excludeIP` as written.
    type Keys = (&'static str, &'static str, &'static str);

    fn module(nic: &str, include: &str, exclude: &str) -> EdgeGatewayModule {
        EdgeGatewayModule {
            nic: nic.to_owned(),
            include_ip: include.to_owned(),
            exclude_ip: exclude.to_owned(),
            ..EdgeGatewayModule::default()
        }
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn parsing_follows_edgemesh_for_star_and_empty() {
        let names = |list: &[&str]| Some(list.iter().map(|n| (*n).to_owned()).collect());
        let cases = [
            (("*", "*", "*"), None, None, vec![]),
            (("", "", ""), None, None, vec![]),
            ((" * ", " ", " *"), None, None, vec![]),
            (
                ("lo, eth0,", "10.0.0.1, 10.0.0.0/8", "*"),
                names(&["lo", "eth0"]),
                Some(nets(&["10.0.0.1/32", "10.0.0.0/8"])),
                vec![],
            ),
            (
                ("eth0", "*", "192.168.1.5/24,2001:db8::1"),
                names(&["eth0"]),
                None,
                nets(&["192.168.1.5/24", "2001:db8::1/128"]),
            ),
            ((",", ",", ","), names(&[]), Some(vec![]), vec![]),
        ];
        for ((nic, include, exclude), want_nics, want_include, want_exclude) in cases {
            let got = module(nic, include, exclude).listen_addresses().unwrap();
            let want = ListenAddresses {
                nics: want_nics,
                include: want_include,
                exclude: want_exclude,
            };
            assert_eq!(got, want, "{nic:?} {include:?} {exclude:?}");
        }
    }

    #[test]
    fn bad_entries_are_each_named_with_their_key() {
        let cases: [(Keys, &[(&str, &str)]); 4] = [
            (("eth0,*", "*", "*"), &[(NIC_KEY, "*")]),
            (("a b", "*", "*"), &[(NIC_KEY, "a b")]),
            (
                ("*", "10.0.0.1,host.example", "10.0.0.0/99"),
                &[(INCLUDE_KEY, "host.example"), (EXCLUDE_KEY, "10.0.0.0/99")],
            ),
            (("*", "*", "*,10.0.0.1"), &[(EXCLUDE_KEY, "*")]),
        ];
        for ((nic, include, exclude), want) in cases {
            let errors = module(nic, include, exclude)
                .listen_addresses()
                .unwrap_err();
            let got: Vec<(String, String)> = errors
                .into_iter()
                .map(|e| match e {
                    ConfigError::Invalid { key, value, .. } => (key, value),
                    other => panic!("unexpected {other}"),
                })
                .collect();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(got, want, "{nic:?} {include:?} {exclude:?}");
        }
    }

    #[test]
    fn select_keeps_ipv4_of_the_chosen_nics_then_include_then_exclude() {
        let host: Vec<(String, IpAddr)> = [
            ("lo", "127.0.0.1"),
            ("lo", "::1"),
            ("eth0", "192.168.1.56"),
            ("eth0", "192.168.1.57"),
            ("eth0", "2001:db8::56"),
            ("eth1", "10.3.2.1"),
            ("br0", "10.3.2.1"),
            ("br0", "172.17.0.1"),
        ]
        .iter()
        .map(|(n, ip)| ((*n).to_owned(), ip.parse().unwrap()))
        .collect();
        let cases: &[(Keys, &[&str])] = &[
            (
                ("*", "*", "*"),
                &[
                    "10.3.2.1",
                    "127.0.0.1",
                    "172.17.0.1",
                    "192.168.1.56",
                    "192.168.1.57",
                ],
            ),
            (("lo", "*", "*"), &["127.0.0.1"]),
            (("eth1,br0", "*", ""), &["10.3.2.1", "172.17.0.1"]),
            (("wlan0", "*", "*"), &[]),
            (
                ("*", "192.168.0.0/16", "*"),
                &["192.168.1.56", "192.168.1.57"],
            ),
            (
                ("*", "192.168.1.56,10.3.2.1", "*"),
                &["10.3.2.1", "192.168.1.56"],
            ),
            (("*", "192.168.1.1/24", "192.168.1.57"), &["192.168.1.56"]),
            (("eth0", "*", "192.168.1.56,192.168.1.57"), &[]),
            (
                ("*", "*", "127.0.0.0/8,172.16.0.0/12"),
                &["10.3.2.1", "192.168.1.56", "192.168.1.57"],
            ),
            (("*", "2001:db8::/32", "*"), &[]),
            (
                ("*", "", "::1"),
                &[
                    "10.3.2.1",
                    "127.0.0.1",
                    "172.17.0.1",
                    "192.168.1.56",
                    "192.168.1.57",
                ],
            ),
        ];
        for ((nic, include, exclude), want) in cases {
            let listen = module(nic, include, exclude).listen_addresses().unwrap();
            let want: Vec<IpAddr> = want.iter().map(|ip| ip.parse().unwrap()).collect();
            assert_eq!(
                listen.select(&host),
                want,
                "{nic:?} {include:?} {exclude:?}"
            );
        }
    }

    #[test]
    fn unmatched_nics_are_those_without_an_ipv4_address() {
        let host: Vec<(String, IpAddr)> = vec![
            ("eth0".into(), "192.168.1.56".parse().unwrap()),
            ("eth6".into(), "2001:db8::6".parse().unwrap()),
        ];
        let listen = module("eth0,eth6,wlan0", "*", "*")
            .listen_addresses()
            .unwrap();
        assert_eq!(listen.unmatched_nics(&host), ["eth6", "wlan0"]);
        let all = module("*", "*", "*").listen_addresses().unwrap();
        assert!(all.unmatched_nics(&host).is_empty());
    }

    #[test]
    fn only_ipv6_entries_are_noticed() {
        let listen = module("*", "10.0.0.0/8,2001:db8::/32", "::1,10.0.0.1")
            .listen_addresses()
            .unwrap();
        let keys: Vec<String> = listen.ipv6_notices().into_iter().map(|w| w.key).collect();
        assert_eq!(keys, [INCLUDE_KEY, EXCLUDE_KEY]);
    }
}
