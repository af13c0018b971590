//! Where objects come from: the Kubernetes API ([`api`]) and a manifests directory
//! ([`manifests`]), started together by [`Sources`].

pub mod api;
pub mod documents;
pub mod manifests;

use std::path::PathBuf;

use edgemesh_config::{Prepared, PreparedGateway};
use edgemesh_model::SourceId;
use tokio::sync::mpsc;

use crate::Inputs;
use crate::client::ClientError;
use crate::publisher::SourceEvent;
use crate::target::ApiTarget;

/// The sources a role reads: the Kubernetes API, a manifests directory, either or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub api: Option<ApiTarget>,
    pub manifests: Option<PathBuf>,
}

impl Sources {
    /// The agent's, as its prepared config found them.
    pub fn of(prepared: &Prepared) -> Self {
        Self {
            api: ApiTarget::of(prepared),
            manifests: prepared.discovery.manifests.clone(),
        }
    }

    /// The gateway's, as its prepared config found them.
    pub fn of_gateway(prepared: &PreparedGateway) -> Self {
        let security = &prepared.config.kube_api_config.meta_server.security;
        Self {
            api: (prepared.discovery.api.clone())
                .map(|endpoint| ApiTarget::from_endpoint(endpoint, security)),
            manifests: prepared.discovery.manifests.clone(),
        }
    }

    /// The sources that must all complete a first sync before the role is ready.
    pub fn ids(&self) -> Vec<SourceId> {
        let mut ids = Vec::new();
        ids.extend(self.api.as_ref().map(|_| SourceId::KubeApi));
        ids.extend(self.manifests.as_ref().map(|_| SourceId::Manifests));
        ids
    }

    /// Spawns each source, reading the kinds `inputs` names; fails only when the API client
    /// cannot be built.
    pub async fn start(
        self,
        events: mpsc::Sender<SourceEvent>,
        inputs: Inputs,
    ) -> Result<(), ClientError> {
        if let Some(dir) = self.manifests {
            let events = events.clone();
            tokio::spawn(async move {
                if let Err(e) = manifests::run(dir, events, inputs).await {
                    tracing::error!(error = %e, "manifests source stopped");
                }
            });
        }
        if let Some(target) = self.api {
            let client = target.client().await?;
            tracing::info!(api = %target, "watching the Kubernetes API");
            tokio::spawn(api::run(client, events, target.endpoints_api(), inputs));
        }
        Ok(())
    }
}
