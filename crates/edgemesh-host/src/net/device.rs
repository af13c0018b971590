//! The bridge device the DNS server (and the SOCKS5 proxy, and the hub) listens on (EdgeMesh's `edgemesh0` with 169.254.96.16/32),
//! created and addressed through netlink, idempotently: running it again changes nothing.
//!
//! A `bridge` link is used because the `dummy` link type is missing on some kernels.

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

use super::{NetError, with_netlink};

/// What [`ensure_bridge_device`] found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeStatus {
    pub index: u32,
    pub created: bool,
    pub address_added: bool,
}

/// Makes sure link `name` exists (creating a bridge if absent), is up, and carries
/// `address/prefix_len`. Other addresses on the link are left alone.
pub async fn ensure_bridge_device(
    name: &str,
    address: IpAddr,
    prefix_len: u8,
) -> Result<BridgeStatus, NetError> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\t', '\n']) {
        return Err(NetError::InvalidName {
            name: name.to_string(),
        });
    }
    with_netlink(|handle| async move { ensure_with(&handle, name, address, prefix_len).await })
        .await
}

async fn ensure_with(
    handle: &Handle,
    name: &str,
    address: IpAddr,
    prefix_len: u8,
) -> Result<BridgeStatus, NetError> {
    let nl = |what| {
        move |source| NetError::Device {
            what,
            device: name.to_string(),
            error: source,
        }
    };
    let (index, created) = match link_index(handle, name).await.map_err(nl("get link"))? {
        Some(index) => (index, false),
        None => {
            let add = handle.link().add(LinkBridge::new(name).build()).execute();
            add.await.map_err(nl("add bridge"))?;
            let index = link_index(handle, name).await.map_err(nl("get link"))?;
            (
                index.ok_or_else(|| NetError::Vanished {
                    device: name.to_string(),
                })?,
                true,
            )
        }
    };
    let up = handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build());
    up.execute().await.map_err(nl("set link up"))?;
    let address_added = if has_address(handle, index, address)
        .await
        .map_err(nl("get addresses"))?
    {
        false
    } else {
        let add = handle.address().add(index, address, prefix_len).execute();
        add.await.map_err(nl("add address"))?;
        true
    };
    Ok(BridgeStatus {
        index,
        created,
        address_added,
    })
}

/// Removes link `name` if it is the device [`ensure_bridge_device`] makes: it exists and carries
/// `address` (a device of the same name without it is someone else's and is left alone).
/// Returns whether it was removed.
pub async fn remove_bridge_device(name: &str, address: IpAddr) -> Result<bool, NetError> {
    with_netlink(|handle| async move { remove_with(&handle, name, address).await }).await
}

async fn remove_with(handle: &Handle, name: &str, address: IpAddr) -> Result<bool, NetError> {
    let nl = |what| {
        move |source| NetError::Device {
            what,
            device: name.to_string(),
            error: source,
        }
    };
    let Some(index) = link_index(handle, name).await.map_err(nl("get link"))? else {
        return Ok(false);
    };
    if !has_address(handle, index, address)
        .await
        .map_err(nl("get addresses"))?
    {
        return Ok(false);
    }
    let delete = handle.link().del(index).execute();
    delete.await.map_err(nl("delete link"))?;
    Ok(true)
}

/// The link's index, or `None` when no link has that name (ENODEV).
async fn link_index(handle: &Handle, name: &str) -> Result<Option<u32>, rtnetlink::Error> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_enodev() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn has_address(
    handle: &Handle,
    index: u32,
    address: IpAddr,
) -> Result<bool, rtnetlink::Error> {
    let mut addresses = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(message) = addresses.try_next().await? {
        let found = message.attributes.iter().any(|a| match a {
            AddressAttribute::Address(ip) | AddressAttribute::Local(ip) => *ip == address,
            _ => false,
        });
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

/// ENODEV on Linux.
const fn libc_enodev() -> i32 {
    19
}
