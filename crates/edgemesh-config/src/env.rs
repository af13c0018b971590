//! What the agent reads from its environment, passed in as values so every rule is testable.

/// Environment variables the config resolution looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    /// `NODE_NAME` (set by EdgeMesh's DaemonSet from `spec.nodeName`).
    pub node_name: Option<String>,
    /// `KUBERNETES_SERVICE_HOST` (set by the kubelet in every pod; not by KubeEdge's edged).
    pub kubernetes_service_host: Option<String>,
}

impl Env {
    /// Reads the variables of this process (an empty value counts as unset).
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            node_name: var("NODE_NAME"),
            kubernetes_service_host: var("KUBERNETES_SERVICE_HOST"),
        }
    }
}

/// Where the agent runs, as EdgeMesh tells it: on a cloud node the kubelet injects the
/// Kubernetes service variables into the pod; on an edge node (KubeEdge's edged) it does not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RunningMode {
    /// EdgeMesh's "EdgeMode": DNS on by default, API through KubeEdge's metaServer.
    #[default]
    Edge,
    /// EdgeMesh's "CloudMode": DNS off by default (CoreDNS serves the node), in-cluster API.
    Cloud,
}

impl RunningMode {
    /// EdgeMesh checks `KUBERNETES_PORT`; the kubelet always sets it together with
    /// `KUBERNETES_SERVICE_HOST`, which is what in-cluster API access needs, so edgemesh
    /// looks at that one and the mode and the discovery rules can never disagree.
    pub fn detect(env: &Env) -> Self {
        if env.kubernetes_service_host.is_some() {
            RunningMode::Cloud
        } else {
            RunningMode::Edge
        }
    }
}
