//! The API server (or metaServer, or hub) as the agent reaches it: the agent's client, built by
//! `edgemesh-kube` from the same config, asked to list what the agent lists.

use std::time::Duration;

use edgemesh_config::ApiEndpoint;
use edgemesh_kube::client;
use edgemesh_kube::source::api::access::{self, ResourceAccess};

use crate::plan::ApiPlan;

/// Where the agent's API is and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `KubeEdge metaServer http://127.0.0.1:10550`, `kubeconfig /path`, ...
    pub target: String,
    pub meta_server: bool,
    /// The client could not be built (bad kubeconfig, missing certificate), or the answers.
    pub result: Result<Vec<ResourceAccess>, String>,
}

pub fn probe(plan: &ApiPlan, timeout: Duration) -> Outcome {
    let result = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            // A kubeconfig's exec plugin could hang: the whole probe is bounded too.
            tokio::time::timeout(timeout * 2, lists(plan, timeout))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {:?}", timeout * 2)))
        }),
        Err(e) => Err(format!("cannot start a runtime: {e}")),
    };
    Outcome {
        target: plan.endpoint.to_string(),
        meta_server: matches!(plan.endpoint, ApiEndpoint::MetaServer(_)),
        result,
    }
}

async fn lists(plan: &ApiPlan, timeout: Duration) -> Result<Vec<ResourceAccess>, String> {
    let client = match &plan.endpoint {
        ApiEndpoint::Kubeconfig(path) => client::from_kubeconfig(path).await,
        ApiEndpoint::Master(url) => client::from_url(url),
        ApiEndpoint::MetaServer(url) => client::for_meta_server(url, plan.meta_server_tls.as_ref()),
        ApiEndpoint::InCluster => client::in_cluster(),
    }
    .map_err(|e| e.to_string())?;
    Ok(access::probe(&client, timeout).await)
}
