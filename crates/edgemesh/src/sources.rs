//! Starting the sources a role reads (the Kubernetes API, a manifests directory), shared by the
//! agent and the gateway; `inputs` says which kinds the role reads.

use std::path::PathBuf;

use edgemesh_kube::source::{api, manifests};
use edgemesh_kube::target::ApiTarget;
use edgemesh_kube::{Inputs, SourceEvent};
use edgemesh_model::SourceId;
use tokio::sync::mpsc;

/// The sources that must all complete a first sync before the role is ready.
pub fn ids(api: Option<&ApiTarget>, manifests: Option<&PathBuf>) -> Vec<SourceId> {
    let mut ids = Vec::new();
    ids.extend(api.map(|_| SourceId::KubeApi));
    ids.extend(manifests.map(|_| SourceId::Manifests));
    ids
}

/// Spawns each source; fails only when the API client cannot be built.
pub async fn start(
    api: Option<&ApiTarget>,
    manifests: Option<PathBuf>,
    events: mpsc::Sender<SourceEvent>,
    inputs: Inputs,
) -> anyhow::Result<()> {
    if let Some(dir) = manifests {
        let events = events.clone();
        tokio::spawn(async move {
            if let Err(e) = manifests::run(dir, events, inputs).await {
                tracing::error!(error = %e, "manifests source stopped");
            }
        });
    }
    if let Some(target) = api {
        let client = target.client().await?;
        tracing::info!(api = %target, "watching the Kubernetes API");
        tokio::spawn(api::run(client, events, target.endpoints_api(), inputs));
    }
    Ok(())
}
