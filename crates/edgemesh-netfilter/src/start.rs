//! The rules as the agent starts and removes them: the backend picked off the async threads,
//! the kernel fast path where the backend has it, the [`Proxier`] over them, and `--cleanup` of
//! both backends with the UDP policy route and the bridge device.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::backend::{BackendKind, RuleBackend};
use crate::error::{NetfilterError, Result};
use crate::proxier::Proxier;
use crate::rules::{DEFAULT_TPROXY_MARK, FastPathOptions, RuleOptions, UdpOptions};
use crate::runner::{CommandRunner, SystemRunner};
use crate::select::select_backend;
use crate::settings::ProxierSettings;
use crate::timestamps::{self, Timestamps};

/// The proxier as the agent starts it once the transparent proxy listens on `tcp` (and on UDP
/// with `udp`): TCP timestamps as `settings` ask, the backend picked, the kernel fast path where
/// that backend has it. Its first sync installs the first rules.
pub async fn proxier(
    settings: &ProxierSettings,
    tcp: SocketAddr,
    udp: Option<UdpOptions>,
    node_name: &str,
) -> Result<Proxier> {
    tcp_timestamps(settings.monotonic_tcp_timestamps);
    let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner::new());
    let backend = pick_backend(settings.backend, runner).await?;
    tracing::info!(backend = %backend.kind(), %tcp, udp = udp.is_some(), "transparent proxy listening; programming ClusterIP interception");
    let options = RuleOptions {
        tcp_port: tcp.port(),
        udp,
        fast_path: fast_path(settings.kernel_fast_path, backend.kind(), node_name),
        ..RuleOptions::default()
    };
    Ok(Proxier::new(backend, options))
}

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

/// `edgemesh agent --cleanup`: removes the rules of both backends, the UDP policy route and the
/// bridge device (`bridge`: its name and the address that shows it is ours). Each step is
/// idempotent and logged; returns one line per step that failed, `WHAT: ERROR`.
pub async fn cleanup(bridge: &(String, IpAddr)) -> Result<Vec<String>> {
    let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner::new());
    let mut failures = cleanup_rules(runner).await?;
    match edgemesh_host::remove_tproxy_route(DEFAULT_TPROXY_MARK).await {
        Ok(()) => tracing::info!("removed the UDP TPROXY policy route"),
        Err(e) => failures.push(format!("UDP policy route: {e:#}")),
    }
    let (device, address) = bridge;
    match edgemesh_host::remove_bridge_device(device, *address).await {
        Ok(true) => tracing::info!(%device, "removed the bridge device"),
        Ok(false) => {}
        Err(e) => failures.push(format!("bridge device {device}: {e}")),
    }
    Ok(failures)
}

/// Removes the rules of both backends (each step idempotent, each logged); returns one line per
/// backend that failed, `BACKEND: ERROR`.
async fn cleanup_rules(runner: Arc<dyn CommandRunner>) -> Result<Vec<String>> {
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
