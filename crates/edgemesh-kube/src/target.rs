//! How the agent reaches a Kubernetes API server: the endpoint EdgeMesh's config names
//! (`edgemesh_config::ApiEndpoint`) as an [`ApiTarget`], the client for it, and which Endpoints
//! API it watches there.

use std::fmt;
use std::path::PathBuf;

use edgemesh_config::{ApiEndpoint, MetaServerSecurity, Prepared};
use kube::Client;

use crate::client::{self, ClientError, MetaServerTls, SERVICE_ACCOUNT_TOKEN};
use crate::source::api::EndpointsApi;

/// How the agent reaches a Kubernetes API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTarget {
    Kubeconfig(PathBuf),
    /// `kubeAPIConfig.master` or the edge hub.
    Url(String),
    /// KubeEdge's metaServer, with `security` when it requires authorization.
    MetaServer {
        url: String,
        tls: Option<MetaServerTls>,
    },
    InCluster,
}

impl fmt::Display for ApiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiTarget::Kubeconfig(path) => write!(f, "kubeconfig {}", path.display()),
            ApiTarget::Url(url) => write!(f, "API server {url}"),
            ApiTarget::MetaServer { url, .. } => write!(f, "KubeEdge metaServer {url}"),
            ApiTarget::InCluster => f.write_str("in-cluster service account"),
        }
    }
}

impl ApiTarget {
    /// The target of a prepared config (`None` when no API is to be watched): what the agent
    /// watches and what `edgemesh doctor` checks.
    pub fn of(prepared: &Prepared) -> Option<Self> {
        let security = &prepared.config.kube_api_config.meta_server.security;
        let endpoint = prepared.discovery.api.clone()?;
        Some(Self::from_endpoint(endpoint, security))
    }

    /// The target for `endpoint`; `security` is `kubeAPIConfig.metaServer.security`.
    pub fn from_endpoint(endpoint: ApiEndpoint, security: &MetaServerSecurity) -> Self {
        match endpoint {
            ApiEndpoint::Kubeconfig(path) => ApiTarget::Kubeconfig(path),
            ApiEndpoint::Master(url) => ApiTarget::Url(url),
            ApiEndpoint::MetaServer(url) => ApiTarget::MetaServer {
                url,
                tls: meta_server_tls(security),
            },
            ApiEndpoint::InCluster => ApiTarget::InCluster,
        }
    }

    /// A client for this target.
    pub async fn client(&self) -> Result<Client, ClientError> {
        match self {
            ApiTarget::Kubeconfig(path) => client::from_kubeconfig(path).await,
            ApiTarget::Url(url) => client::from_url(url),
            ApiTarget::MetaServer { url, tls } => client::for_meta_server(url, tls.as_ref()),
            ApiTarget::InCluster => client::in_cluster(),
        }
    }

    /// KubeEdge's metaServer serves the core Endpoints only; elsewhere EndpointSlices are
    /// discovered.
    pub fn endpoints_api(&self) -> EndpointsApi {
        match self {
            ApiTarget::MetaServer { .. } => EndpointsApi::CoreOnly,
            _ => EndpointsApi::Discover,
        }
    }
}

/// EdgeMesh uses `security`'s files only when the metaServer requires authorization.
fn meta_server_tls(security: &MetaServerSecurity) -> Option<MetaServerTls> {
    security.require_authorization.then(|| MetaServerTls {
        ca_file: security.tls_ca_file.clone(),
        cert_file: security.tls_cert_file.clone(),
        key_file: security.tls_private_key_file.clone(),
        insecure_skip_tls_verify: security.insecure_skip_tls_verify,
        token_file: SERVICE_ACCOUNT_TOKEN.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meta_server_is_reached_with_its_security_only_when_it_requires_authorization() {
        let url = "http://127.0.0.1:10550".to_owned();
        let open = MetaServerSecurity::default();
        let target = ApiTarget::from_endpoint(ApiEndpoint::MetaServer(url.clone()), &open);
        assert_eq!(
            target,
            ApiTarget::MetaServer {
                url: url.clone(),
                tls: None
            }
        );
        assert_eq!(target.endpoints_api(), EndpointsApi::CoreOnly);
        assert_eq!(target.to_string(), format!("KubeEdge metaServer {url}"));
        let secured = MetaServerSecurity {
            require_authorization: true,
            ..MetaServerSecurity::default()
        };
        let target = ApiTarget::from_endpoint(ApiEndpoint::MetaServer(url), &secured);
        let ApiTarget::MetaServer { tls: Some(tls), .. } = target else {
            panic!("{target:?}");
        };
        assert_eq!(tls.cert_file, secured.tls_cert_file);
        assert_eq!(tls.token_file, PathBuf::from(SERVICE_ACCOUNT_TOKEN));
    }

    #[test]
    fn other_targets_discover_endpoint_slices() {
        let security = MetaServerSecurity::default();
        let master =
            ApiTarget::from_endpoint(ApiEndpoint::Master("http://hub:1".into()), &security);
        assert_eq!(master, ApiTarget::Url("http://hub:1".into()));
        assert_eq!(master.endpoints_api(), EndpointsApi::Discover);
        let in_cluster = ApiTarget::from_endpoint(ApiEndpoint::InCluster, &security);
        assert_eq!(in_cluster.endpoints_api(), EndpointsApi::Discover);
    }
}
