//! The narrow seam between the proxier and the kernel, backend selection, and a fake.

use std::fmt::{self, Debug};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{NetfilterError, Result};
use crate::rules::RuleSet;

/// What one sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncStats {
    pub backend: &'static str,
    /// Intercepted frontends now in the kernel.
    pub frontends: usize,
    /// Size of the transaction text sent to the tool.
    pub bytes: usize,
    pub duration: Duration,
    /// Frontends the kernel DNATs itself (nftables fast path), a subset of `frontends`.
    pub fast_path: usize,
    /// Our jumps had been displaced (iptables only) and were moved back first.
    pub order_repaired: bool,
    /// Only the elements that changed were sent (nftables); false for a full rewrite.
    pub incremental: bool,
}

/// Applies rule sets atomically: after an apply the kernel holds exactly `rules`, however the
/// backend got there (a full rewrite, or only the changes against the set it applied last).
pub trait RuleBackend: Debug + Send {
    fn name(&self) -> &'static str;
    /// Which backend this is (never `Auto`): what the kernel fast path and cleanup ask.
    fn kind(&self) -> BackendKind;
    /// Replaces everything we installed before with `rules`, in one transaction per table. The
    /// backend keeps `rules` (by value, not a copy) when it updates incrementally next time.
    fn apply(&mut self, rules: RuleSet) -> Result<SyncStats>;
    /// Removes everything we installed (idempotent).
    fn cleanup(&mut self) -> Result<()>;
    /// Restores the ordering against kube-proxy if it was lost; true when it had been.
    fn repair(&mut self) -> Result<bool>;
    /// The rules of the last successful apply when the backend keeps them (nftables): the
    /// proxier patches them for the services a Snapshot changed instead of computing all rules.
    fn applied(&self) -> Option<&RuleSet> {
        None
    }
}

/// Which backend to use (`proxier mode` in the configuration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// nftables when `nft list tables` works, else iptables.
    #[default]
    Auto,
    Nftables,
    Iptables,
}

impl FromStr for BackendKind {
    type Err = NetfilterError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "nftables" | "nft" => Ok(Self::Nftables),
            "iptables" => Ok(Self::Iptables),
            other => Err(NetfilterError::UnknownMode(other.to_string())),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Nftables => "nftables",
            Self::Iptables => "iptables",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_reject_typos() {
        assert_eq!("auto".parse::<BackendKind>().unwrap(), BackendKind::Auto);
        assert_eq!(
            "nftables".parse::<BackendKind>().unwrap(),
            BackendKind::Nftables
        );
        assert_eq!(
            "iptables".parse::<BackendKind>().unwrap(),
            BackendKind::Iptables
        );
        let err = "ipvs".parse::<BackendKind>().unwrap_err().to_string();
        assert!(err.contains("'ipvs'") && err.contains("nftables"), "{err}");
    }
}
