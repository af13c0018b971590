//! Live config changes: the tunnel follows the config file (`edgemesh_tunnel::relays_reload`)
//! and applies new `modules.edgeTunnel.relayNodes`; this reads the changed file as a start would.

use std::path::{Path, PathBuf};

use edgemesh_tunnel::{RelayNode, TunnelHandle};

use super::Settings;
use crate::cli::AgentArgs;

/// Follows the config file of `args` and applies new relay lists to the tunnel.
pub fn follow_relays(args: AgentArgs, path: PathBuf, tunnel: TunnelHandle, relays: Vec<RelayNode>) {
    let file = path.clone();
    let reload = move || reloaded_relays(&args, &file);
    edgemesh_tunnel::relays_reload::follow_relays(path, tunnel, relays, reload);
}

/// The relay list of the changed file, or `None` (logged) when the file is no longer valid: the
/// running settings stay as they are.
fn reloaded_relays(args: &AgentArgs, path: &Path) -> Option<Vec<RelayNode>> {
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
