//! `kubeAPIConfig`: how the agent reaches a Kubernetes API server.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::nullable;

/// EdgeMesh's default metaServer address (KubeEdge edgecore's local API on every edge node).
pub const DEFAULT_META_SERVER: &str = "http://127.0.0.1:10550";
/// Content type EdgeMesh uses on cloud nodes.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// Content type EdgeMesh forces on edge nodes (kubeedge/kubeedge#3041).
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// `kubeAPIConfig`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KubeApiConfig {
    /// API server URL; set (or `kubeConfig`) ⇒ EdgeMesh's "ManualMode". Empty = unset.
    pub master: String,
    /// Accepted for compatibility; edgemesh always speaks JSON.
    pub content_type: String,
    /// Accepted for compatibility; not applied yet.
    pub qps: i32,
    /// Accepted for compatibility; not applied yet.
    pub burst: i32,
    /// Path of a kubeconfig file. Empty = unset.
    pub kube_config: PathBuf,
    /// Accepted for compatibility; edgemesh never deletes the kubeconfig.
    pub delete_kube_config: bool,
    #[serde(deserialize_with = "nullable")]
    pub meta_server: MetaServer,
}

impl KubeApiConfig {
    /// `kubeConfig`, unless empty.
    pub fn kubeconfig(&self) -> Option<&Path> {
        (!self.kube_config.as_os_str().is_empty()).then_some(self.kube_config.as_path())
    }

    /// `master`, unless empty.
    pub fn master(&self) -> Option<&str> {
        (!self.master.is_empty()).then_some(self.master.as_str())
    }
}

impl Default for KubeApiConfig {
    /// EdgeMesh's defaults on an edge node (JSON content type).
    fn default() -> Self {
        Self {
            master: String::new(),
            content_type: CONTENT_TYPE_JSON.to_owned(),
            qps: 100,
            burst: 200,
            kube_config: PathBuf::new(),
            delete_kube_config: false,
            meta_server: MetaServer::default(),
        }
    }
}

/// `kubeAPIConfig.metaServer`: KubeEdge's edge-local API (EdgeMesh's "EdgeMode").
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetaServer {
    pub server: String,
    #[serde(deserialize_with = "nullable")]
    pub security: MetaServerSecurity,
}

impl Default for MetaServer {
    fn default() -> Self {
        Self {
            server: DEFAULT_META_SERVER.to_owned(),
            security: MetaServerSecurity::default(),
        }
    }
}

/// `kubeAPIConfig.metaServer.security` (KubeEdge ≥ 1.12 TLS access to the metaServer).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetaServerSecurity {
    /// When true the metaServer URL's `http://` becomes `https://`, as in EdgeMesh.
    pub require_authorization: bool,
    #[serde(rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: bool,
    pub tls_ca_file: PathBuf,
    pub tls_cert_file: PathBuf,
    pub tls_private_key_file: PathBuf,
}

impl Default for MetaServerSecurity {
    fn default() -> Self {
        Self {
            require_authorization: false,
            insecure_skip_tls_verify: false,
            tls_ca_file: "/etc/edgemesh/metaserver/rootCA.crt".into(),
            tls_cert_file: "/etc/edgemesh/metaserver/server.crt".into(),
            tls_private_key_file: "/etc/edgemesh/metaserver/server.key".into(),
        }
    }
}
