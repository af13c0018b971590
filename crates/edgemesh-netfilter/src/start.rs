//! The rules as the agent starts and removes them: the backend picked off the async threads,
//! the kernel fast path where the backend has it, and `--cleanup` of both backends.

use std::sync::Arc;

use crate::backend::{BackendKind, RuleBackend};
use crate::error::{NetfilterError, Result};
use crate::rules::FastPathOptions;
use crate::runner::CommandRunner;
use crate::select::select_backend;
use crate::timestamps::{self, Timestamps};

/// The backend `kind` asks for (`auto` probes the host), picked on a blocking thread: probing
/// runs `nft` and `iptables`.
pub async fn pick_backend(
    kind: BackendKind,
    runner: Arc<dyn CommandRunner>,
) -> Result<Box<dyn RuleBackend>> {
    tokio::task::spawn_blocking(move || select_backend(kind, runner))
        .await
        .map_err(|error| NetfilterError::Task { error })?
}

/// The kernel fast path needs nftables (numgen DNAT maps); with iptables every frontend is proxied.
/// `wanted` is `modules.edgeProxy.kernelFastPath`; `node_name` is this node.
pub fn fast_path(wanted: bool, backend: BackendKind, node_name: &str) -> Option<FastPathOptions> {
    let on = wanted && backend == BackendKind::Nftables;
    if wanted && !on {
        tracing::info!(%backend, "kernel fast path off: it needs the nftables backend");
    }
    on.then(|| FastPathOptions {
        local_node: Some(Arc::from(node_name)),
    })
}

/// `modules.edgeProxy.monotonicTcpTimestamps`: applied in the agent's network namespace before
/// the first rules. A failure is logged, not fatal: the data path works without it, only new
/// connections that meet a backend's TIME_WAIT may wait for a SYN retransmit.
pub fn tcp_timestamps(wanted: bool) {
    if !wanted {
        return;
    }
    let sysctl = timestamps::TCP_TIMESTAMPS;
    match timestamps::make_monotonic() {
        Ok(Timestamps::Changed) => {
            tracing::info!(
                sysctl,
                from = 1,
                to = 2,
                "TCP timestamps without per-connection offsets"
            );
        }
        Ok(Timestamps::AlreadyMonotonic) => tracing::debug!(sysctl, "TCP timestamps already 2"),
        Ok(Timestamps::Disabled) => {
            tracing::info!(sysctl, "TCP timestamps are off (0): left alone");
        }
        Err(e) => tracing::warn!(error = %e, "monotonicTcpTimestamps: could not set it"),
    }
}

/// Removes the rules of both backends (each step idempotent, each logged); returns one line per
/// backend that failed, `BACKEND: ERROR`.
pub async fn cleanup_rules(runner: Arc<dyn CommandRunner>) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    for kind in [BackendKind::Nftables, BackendKind::Iptables] {
        let runner = Arc::clone(&runner);
        let removed = tokio::task::spawn_blocking(move || select_backend(kind, runner)?.cleanup())
            .await
            .map_err(|error| NetfilterError::Task { error })?;
        match removed {
            Ok(()) => tracing::info!(backend = %kind, "removed the rules"),
            Err(e) => failures.push(format!("{kind}: {e}")),
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_runs_only_when_wanted_and_on_nftables() {
        let on = fast_path(true, BackendKind::Nftables, "edge-1");
        let local = on.and_then(|o| o.local_node);
        assert_eq!(local.as_deref(), Some("edge-1"));
        assert!(fast_path(true, BackendKind::Iptables, "edge-1").is_none());
        assert!(fast_path(false, BackendKind::Nftables, "edge-1").is_none());
    }
}
