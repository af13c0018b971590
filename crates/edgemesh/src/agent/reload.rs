//! Live config changes: EdgeMesh reloads `modules.edgeTunnel.relayNodes` when its ConfigMap
//! changes, so the agent does too. Everything else in the file applies at the next start.
//!
//! The file is polled rather than watched: kubelet updates a ConfigMap volume by swapping a
//! symlink (`..data`), which inotify on the file itself misses, and a small read every few
//! seconds costs nothing next to kubelet's own ~60 s propagation delay.

use std::path::PathBuf;
use std::time::Duration;

use edgemesh_tunnel::{RelayNode, TunnelHandle};

use super::Settings;
use crate::cli::AgentArgs;

/// How often the config file is read for changes.
const POLL: Duration = Duration::from_secs(3);

/// Follows the config file of `args` and applies new relay lists to the tunnel.
pub fn follow_relays(args: AgentArgs, path: PathBuf, tunnel: TunnelHandle, relays: Vec<RelayNode>) {
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
            if let Some(relays) = reloaded_relays(&args, &path)
                && relays != current
            {
                apply(&tunnel, &relays).await;
                current = relays;
            }
        }
    });
}

/// The relay list of the changed file, or `None` (logged) when the file is no longer valid: the
/// running settings stay as they are.
fn reloaded_relays(args: &AgentArgs, path: &std::path::Path) -> Option<Vec<RelayNode>> {
    match Settings::load(args) {
        Ok(settings) => {
            tracing::info!(
                file = %path.display(),
                "config file changed: relayNodes applied now; other changes apply at the next start"
            );
            Some(settings.tunnel.map(|t| t.relays).unwrap_or_default())
        }
        Err(errors) => {
            for error in errors.iter() {
                tracing::warn!(file = %path.display(), %error, "config file changed but is invalid, keeping the running settings");
            }
            None
        }
    }
}

async fn apply(tunnel: &TunnelHandle, relays: &[RelayNode]) {
    let names: Vec<&str> = relays.iter().map(|r| r.node_name.as_str()).collect();
    match tunnel.set_relays(relays.to_vec()).await {
        Ok(()) => tracing::info!(relays = ?names, "relay nodes reloaded"),
        Err(error) => tracing::warn!(%error, "cannot apply the new relay nodes"),
    }
}
