use std::process::ExitStatus;

/// What went wrong while talking to the kernel's netfilter tools.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetfilterError {
    #[error("could not run `{command}`: {error} (is it installed and in PATH?)")]
    Spawn {
        command: String,
        error: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{0}")]
    Netlink(edgemesh_host::NetError),
    #[error("`{command}` printed output that is not UTF-8")]
    NotUtf8 { command: String },
    #[error(
        "no usable netfilter backend: nftables ({nft}); iptables ({iptables}). \
         Install nftables or iptables and run with CAP_NET_ADMIN"
    )]
    NoBackend { nft: String, iptables: String },
    /// Only from [`FakeBackend`](crate::FakeBackend), when a test asks it to fail.
    #[error("fake backend: {0}")]
    Fake(&'static str),
    #[error("unknown proxier mode '{0}' (expected auto, nftables or iptables)")]
    UnknownMode(String),
    #[error("{path}: {error}")]
    Sysctl {
        path: &'static str,
        error: std::io::Error,
    },
    #[error("{path} holds '{value}', expected 0, 1 or 2")]
    SysctlValue { path: &'static str, value: String },
    /// A blocking step (running `nft` or `iptables`) did not finish: it panicked.
    #[error("{error}")]
    Task { error: tokio::task::JoinError },
}

pub type Result<T, E = NetfilterError> = std::result::Result<T, E>;
