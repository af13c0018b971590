//! What a change to the host's network can fail with.

/// A netlink request failed, or its input was refused before asking the kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    #[error("cannot open a netlink socket: {error}")]
    Connect { error: std::io::Error },
    #[error("netlink request '{what}' for device '{device}' failed: {error}")]
    Device {
        what: &'static str,
        device: String,
        error: rtnetlink::Error,
    },
    #[error("device '{device}' was created but cannot be found afterwards")]
    Vanished { device: String },
    #[error("invalid bridge device name '{name}': 1 to 15 characters, no '/' or whitespace")]
    InvalidName { name: String },
    #[error("{request} failed: {error}")]
    Route {
        /// The request as `ip` would spell it, e.g. `ip rule add fwmark 0x2000 lookup 100`.
        request: String,
        error: rtnetlink::Error,
    },
    #[error("cannot list the interface addresses: {error}")]
    Interfaces { error: std::io::Error },
    #[error("nftables netlink transaction failed: {error}")]
    Nftables { error: std::io::Error },
    #[error("no loopback device (lo) to route TPROXY traffic to")]
    NoLoopback,
}
