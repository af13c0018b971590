//! An in-memory backend for component tests (the `testing` feature).

use std::time::Duration;

use crate::backend::{BackendKind, RuleBackend, SyncStats};
use crate::error::{NetfilterError, Result};
use crate::rules::RuleSet;

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

    fn apply(&mut self, rules: RuleSet) -> Result<SyncStats> {
        if std::mem::take(&mut self.fail_next_apply) {
            return Err(NetfilterError::Fake("apply failed on request"));
        }
        self.applies += 1;
        let stats = SyncStats {
            backend: "fake",
            frontends: rules.elements.len(),
            bytes: 0,
            duration: Duration::ZERO,
            fast_path: rules.fast.len(),
            order_repaired: std::mem::take(&mut self.displaced),
            incremental: false,
        };
        self.current = Some(rules);
        Ok(stats)
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
    fn fake_records_and_forgets() {
        let rules = desired_rules(&crate::fixtures::sample_snapshot(), &RuleOptions::default());
        let mut fake = FakeBackend {
            displaced: true,
            ..FakeBackend::default()
        };
        let stats = fake.apply(rules.clone()).unwrap();
        assert!(stats.order_repaired);
        assert_eq!(fake.current.as_ref(), Some(&rules));
        assert!(!fake.repair().unwrap());
        fake.cleanup().unwrap();
        assert!(fake.current.is_none());
    }
}
