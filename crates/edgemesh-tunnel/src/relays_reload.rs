//! Live relay lists: EdgeMesh reloads `modules.edgeTunnel.relayNodes` when its ConfigMap
//! changes, so the agent does too. Everything else in the file applies at the next start.
//!
//! The file is polled rather than watched: kubelet updates a ConfigMap volume by swapping a
//! symlink (`..data`), which inotify on the file itself misses, and a small read every few
//! seconds costs nothing next to kubelet's own ~60 s propagation delay.

use std::path::PathBuf;
use std::time::Duration;

use crate::TunnelHandle;
use crate::config::RelayNode;

/// How often the config file is read for changes.
const POLL: Duration = Duration::from_secs(3);

/// Follows the config file at `path` and applies new relay lists to the tunnel. `reload` reads
/// the changed file: the relay list it names, or `None` (logged by it) when the file is no longer
/// valid and the running settings stay as they are.
pub fn follow_relays(
    path: PathBuf,
    tunnel: TunnelHandle,
    relays: Vec<RelayNode>,
    reload: impl Fn() -> Option<Vec<RelayNode>> + Send + 'static,
) {
    tokio::spawn(async move {
        let mut seen = std::fs::read(&path).ok();
        let mut current = relays;
        let mut tick = tokio::time::interval(POLL);
        loop {
            tick.tick().await;
            let text = std::fs::read(&path).ok();
            if text.is_none() || text == seen {
                continue;
            }
            seen = text;
            if let Some(relays) = reload()
                && relays != current
            {
                apply(&tunnel, &relays).await;
                current = relays;
            }
        }
    });
}

async fn apply(tunnel: &TunnelHandle, relays: &[RelayNode]) {
    let names: Vec<&str> = relays.iter().map(|r| r.node_name.as_str()).collect();
    match tunnel.set_relays(relays.to_vec()).await {
        Ok(()) => tracing::info!(relays = ?names, "relay nodes reloaded"),
        Err(error) => tracing::warn!(%error, "cannot apply the new relay nodes"),
    }
}
