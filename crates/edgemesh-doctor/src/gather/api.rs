//! The API server (or metaServer, or hub) as the agent reaches it: the agent's client, built by
//! `edgemesh-kube` from the same config, asked to list what the agent lists.

use std::time::Duration;

use edgemesh_kube::source::api::access::{self, ResourceAccess};
use edgemesh_kube::target::ApiTarget;

/// Where the agent's API is and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `KubeEdge metaServer http://127.0.0.1:10550`, `kubeconfig /path`, ...
    pub target: String,
    pub meta_server: bool,
    /// The client could not be built (bad kubeconfig, missing certificate), or the answers.
    pub result: Result<Vec<ResourceAccess>, String>,
}

pub fn probe(target: &ApiTarget, timeout: Duration) -> Outcome {
    let result = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            // A kubeconfig's exec plugin could hang: the whole probe is bounded too.
            tokio::time::timeout(timeout * 2, lists(target, timeout))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {:?}", timeout * 2)))
        }),
        Err(e) => Err(format!("cannot start a runtime: {e}")),
    };
    Outcome {
        target: target.to_string(),
        meta_server: matches!(target, ApiTarget::MetaServer { .. }),
        result,
    }
}

async fn lists(target: &ApiTarget, timeout: Duration) -> Result<Vec<ResourceAccess>, String> {
    let client = target.client().await.map_err(|e| e.to_string())?;
    Ok(access::probe(&client, timeout).await)
}
