//! The narrow seam between the proxier and the kernel, backend selection, and a fake.

use std::fmt::{self, Debug};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{NetfilterError, Result};
use crate::iptables::IptablesBackend;
use crate::nft::NftBackend;
use crate::rules::RuleSet;
use crate::runner::CommandRunner;

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
}

/// Applies whole rule sets atomically.
pub trait RuleBackend: Debug + Send {
    fn name(&self) -> &'static str;
    /// Which backend this is (never `Auto`): what the kernel fast path and cleanup ask.
    fn kind(&self) -> BackendKind;
    /// Replaces everything we installed before with `rules`, in one transaction per table.
    fn apply(&mut self, rules: &RuleSet) -> Result<SyncStats>;
    /// Removes everything we installed (idempotent).
    fn cleanup(&mut self) -> Result<()>;
    /// Restores the ordering against kube-proxy if it was lost; true when it had been.
    fn repair(&mut self) -> Result<bool>;
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

/// Builds the backend `kind` asks for; `Auto` probes nft first, then iptables. The error of a
/// failed probe names the command and its stderr.
pub fn select_backend(
    kind: BackendKind,
    runner: Arc<dyn CommandRunner>,
) -> Result<Box<dyn RuleBackend>> {
    match kind {
        BackendKind::Nftables => Ok(Box::new(NftBackend::new(runner))),
        BackendKind::Iptables => Ok(Box::new(IptablesBackend::new(runner))),
        BackendKind::Auto => {
            let nft = match NftBackend::probe(runner.as_ref()) {
                Ok(()) => return Ok(Box::new(NftBackend::new(runner))),
                Err(e) => e.to_string(),
            };
            match IptablesBackend::probe(runner.as_ref()) {
                Ok(()) => Ok(Box::new(IptablesBackend::new(runner))),
                Err(e) => Err(NetfilterError::NoBackend {
                    nft,
                    iptables: e.to_string(),
                }),
            }
        }
    }
}

/// An in-memory backend for component tests: records what was applied.
#[derive(Clone, Debug, Default)]
pub struct FakeBackend {
    /// The rule set the "kernel" holds now (`None` after cleanup or before the first apply).
    pub current: Option<RuleSet>,
    pub applies: usize,
    pub cleanups: usize,
    /// Make the next `repair` report a displaced jump (simulates kube-proxy prepending).
    pub displaced: bool,
    /// Make the next `apply` fail (simulates a rejected transaction).
    pub fail_next_apply: bool,
    /// The kind it reports; `Auto` (the default) stands for neither real backend.
    pub kind: BackendKind,
}

impl RuleBackend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn apply(&mut self, rules: &RuleSet) -> Result<SyncStats> {
        if std::mem::take(&mut self.fail_next_apply) {
            return Err(NetfilterError::Fake("apply failed on request"));
        }
        self.applies += 1;
        self.current = Some(rules.clone());
        Ok(SyncStats {
            backend: "fake",
            frontends: rules.elements.len(),
            bytes: 0,
            duration: Duration::ZERO,
            fast_path: rules.fast.len(),
            order_repaired: std::mem::take(&mut self.displaced),
        })
    }

    fn cleanup(&mut self) -> Result<()> {
        self.cleanups += 1;
        self.current = None;
        Ok(())
    }

    fn repair(&mut self) -> Result<bool> {
        Ok(std::mem::take(&mut self.displaced))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{RuleOptions, desired_rules};

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

    #[test]
    fn fake_records_and_forgets() {
        let rules = desired_rules(&crate::fixtures::sample_snapshot(), &RuleOptions::default());
        let mut fake = FakeBackend {
            displaced: true,
            ..FakeBackend::default()
        };
        let stats = fake.apply(&rules).unwrap();
        assert!(stats.order_repaired);
        assert_eq!(fake.current.as_ref(), Some(&rules));
        assert!(!fake.repair().unwrap());
        fake.cleanup().unwrap();
        assert!(fake.current.is_none());
    }
}
