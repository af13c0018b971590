//! Whether the agent's credentials may list what it reads: one `list` (limit 1) per resource,
//! each answered by what to grant when RBAC says no. `edgemesh doctor` asks this.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};

use super::refusal::{Grant, Refusal, classify, describe};
use super::{ENDPOINT_SLICES, ENDPOINTS, SERVICES};

/// What the server answered to one list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// RBAC's 403: the server's message and what to grant.
    Forbidden {
        message: String,
        grant: String,
    },
    /// 404, or the metaServer's 500 "isn't supported".
    NotServed(String),
    /// No HTTP answer (connection, TLS, timeout) or another status (401, 5xx).
    Failed(String),
}

/// One resource the agent reads, and the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceAccess {
    /// `services (core API group)`.
    pub resource: String,
    /// Readiness waits for it (services, endpoints); the agent does without the others.
    pub required: bool,
    pub access: Access,
}

/// Lists services, endpoints and endpointslices once each, in parallel, each within `timeout`.
pub async fn probe(client: &Client, timeout: Duration) -> Vec<ResourceAccess> {
    let (services, endpoints, slices) = tokio::join!(
        list::<Service>(client, SERVICES, timeout),
        list::<Endpoints>(client, ENDPOINTS, timeout),
        list::<EndpointSlice>(client, ENDPOINT_SLICES, timeout),
    );
    vec![
        resource(SERVICES, true, services),
        resource(ENDPOINTS, true, endpoints),
        resource(ENDPOINT_SLICES, false, slices),
    ]
}

async fn list<K>(client: &Client, grant: Grant, timeout: Duration) -> Access
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api = Api::<K>::all(client.clone());
    let params = ListParams::default().limit(1);
    match tokio::time::timeout(timeout, api.list_metadata(&params)).await {
        Ok(Ok(_)) => Access::Allowed,
        Ok(Err(e)) => match classify(&e) {
            Some(refusal @ Refusal::Forbidden(_)) => Access::Forbidden {
                grant: grant.hint(&refusal),
                message: refusal.message().to_owned(),
            },
            Some(Refusal::Unsupported(message)) => Access::NotServed(message),
            None => Access::Failed(describe(&e)),
        },
        Err(_) => Access::Failed(format!("no answer within {timeout:?}")),
    }
}

fn resource(grant: Grant, required: bool, access: Access) -> ResourceAccess {
    ResourceAccess {
        resource: grant.to_string(),
        required,
        access,
    }
}
