//! The addresses on the host's interfaces, as `getifaddrs(3)` lists them.

use std::net::IpAddr;

use super::NetError;

/// Every IPv4 and IPv6 address on the host's interfaces (of the calling thread's network
/// namespace), sorted, each once. Callers pick what they need (e.g. no loopback).
pub fn interface_addresses() -> Result<Vec<IpAddr>, NetError> {
    let mut ips: Vec<IpAddr> = named_interface_addresses()?
        .into_iter()
        .map(|(_, ip)| ip)
        .collect();
    ips.sort();
    ips.dedup();
    Ok(ips)
}

/// Every address with the name of the interface carrying it, in the order `getifaddrs` lists
/// them (the gateway listens on the addresses of chosen interfaces).
pub fn named_interface_addresses() -> Result<Vec<(String, IpAddr)>, NetError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| NetError::Interfaces { error: e.into() })?;
    Ok(addrs
        .filter_map(|a| {
            let address = a.address?;
            let ip = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (_, Some(v6)) => IpAddr::V6(v6.ip()),
                _ => return None,
            };
            Some((a.interface_name, ip))
        })
        .collect())
}

/// Every interface address with its netmask's prefix length (entries without a netmask are
/// left out), in the order `getifaddrs` lists them.
pub fn interface_networks() -> Result<Vec<(IpAddr, u8)>, NetError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| NetError::Interfaces { error: e.into() })?;
    Ok(addrs
        .filter_map(|a| {
            let (address, mask) = (a.address?, a.netmask?);
            let (ip, prefix) = match (address.as_sockaddr_in(), mask.as_sockaddr_in()) {
                (Some(ip), Some(mask)) => (IpAddr::V4(ip.ip()), mask.ip().to_bits().count_ones()),
                _ => {
                    let (ip, mask) = (address.as_sockaddr_in6()?, mask.as_sockaddr_in6()?);
                    (IpAddr::V6(ip.ip()), mask.ip().to_bits().count_ones())
                }
            };
            Some((ip, u8::try_from(prefix).ok()?))
        })
        .collect())
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
