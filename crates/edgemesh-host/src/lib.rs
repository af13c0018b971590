//! The host seam: the one place where edgemesh makes sockets and changes the host's network.
//!
//! - [`SocketFactory`] (in the shape of ztunnel's): every crate that opens a socket asks it, so
//!   the bypass mark, `TCP_NODELAY` and `IP_TRANSPARENT` are applied in one place
//!   ([`HostSockets`]) and a test or another role can hand in its own.
//! - [`net`]: netlink devices ([`ensure_bridge_device`]), the TPROXY policy route
//!   ([`ensure_tproxy_route`]) and the interface addresses ([`interface_addresses`]), used by the
//!   agent, the hub and the kernel tests alike.
#![forbid(unsafe_code)]

pub mod net;
pub mod sockets;

pub use net::{
    BridgeStatus, NETNS_RUN_DIR, NetError, TPROXY_TABLE, ensure_bridge_device, ensure_tproxy_route,
    in_named_netns, interface_addresses, interface_networks, nftables_transaction,
    remove_bridge_device, remove_tproxy_route,
};
pub use sockets::{
    FD_RESERVE, HostSockets, Keepalive, SocketError, SocketFactory, TRANSPARENT_RECEIVE_BUFFER,
    UPSTREAM_RECEIVE_BUFFER, connect, fd_in_reserve, keep_alive, raise_fd_limit,
};
