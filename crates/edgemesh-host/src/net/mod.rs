//! The host's network, changed through netlink and read through `getifaddrs`: each function
//! opens its own netlink connection in the calling thread's network namespace (so a test that
//! runs it on a thread inside a namespace changes that namespace only) and is idempotent.

mod addresses;
mod device;
mod error;
mod netns;
mod nftables;
mod tproxy_route;

pub use addresses::{interface_addresses, interface_networks, named_interface_addresses};
pub use device::{BridgeStatus, ensure_bridge_device, remove_bridge_device};
pub use error::NetError;
pub use netns::{NETNS_RUN_DIR, in_named_netns};
pub use nftables::nftables_transaction;
pub use tproxy_route::{TPROXY_TABLE, ensure_tproxy_route, remove_tproxy_route};

use std::future::Future;

use rtnetlink::Handle;

/// Runs `f` with a netlink handle whose connection lives exactly as long as `f`.
async fn with_netlink<F, Fut, T>(f: F) -> Result<T, NetError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, NetError>>,
{
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|error| NetError::Connect { error })?;
    let connection = tokio::spawn(connection);
    let result = f(handle).await;
    connection.abort();
    result
}
