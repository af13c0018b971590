//! The addresses on the host's interfaces, as `getifaddrs(3)` lists them.

use std::net::IpAddr;

use super::NetError;

/// Every IPv4 and IPv6 address on the host's interfaces (of the calling thread's network
/// namespace), sorted, each once. Callers pick what they need (e.g. no loopback).
pub fn interface_addresses() -> Result<Vec<IpAddr>, NetError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| NetError::Interfaces { error: e.into() })?;
    let mut ips: Vec<IpAddr> = addrs
        .filter_map(|a| {
            let address = a.address?;
            match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
                (Some(v4), _) => Some(IpAddr::V4(v4.ip())),
                (_, Some(v6)) => Some(IpAddr::V6(v6.ip())),
                _ => None,
            }
        })
        .collect();
    ips.sort();
    ips.dedup();
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_loopback_once() {
        let ips = interface_addresses().unwrap();
        let loopback = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(
            ips.iter().filter(|ip| **ip == loopback).count(),
            1,
            "{ips:?}"
        );
    }
}
