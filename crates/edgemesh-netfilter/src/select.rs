//! Which backend runs: the one configured, or the first that works on this host.

use std::sync::Arc;

use crate::backend::{BackendKind, RuleBackend};
use crate::error::{NetfilterError, Result};
use crate::iptables::IptablesBackend;
use crate::nft::NftBackend;
use crate::runner::CommandRunner;

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
