//! `modules.edgeProxy` of EdgeMesh's agent config as the proxier reads it (the proxy's part is
//! `edgemesh_proxy::settings`).

use edgemesh_config::{EdgeProxy, ProxyBackend};

use crate::backend::BackendKind;

/// `modules.edgeProxy`: the rules that point ClusterIP traffic at the proxy.
#[derive(Debug, Clone)]
pub struct ProxierSettings {
    pub backend: BackendKind,
    /// DNAT in the kernel what needs no userspace decision (nftables only).
    pub kernel_fast_path: bool,
    /// `net.ipv4.tcp_timestamps = 2` in this network namespace ([`crate::timestamps`]).
    pub monotonic_tcp_timestamps: bool,
}

impl ProxierSettings {
    pub fn from_config(proxy: &EdgeProxy) -> Self {
        Self {
            backend: match proxy.backend.get().unwrap_or_default() {
                ProxyBackend::Auto => BackendKind::Auto,
                ProxyBackend::Nftables => BackendKind::Nftables,
                ProxyBackend::Iptables => BackendKind::Iptables,
            },
            kernel_fast_path: proxy.kernel_fast_path,
            monotonic_tcp_timestamps: proxy.monotonic_tcp_timestamps,
        }
    }
}

#[cfg(test)]
mod tests {
    use edgemesh_config::{AgentConfig, RunningMode};

    use super::*;

    fn settings(proxy_yaml: &str) -> ProxierSettings {
        let yaml = format!("modules:\n  edgeProxy:\n    enable: true\n{proxy_yaml}");
        let loaded = AgentConfig::from_yaml(&yaml, "test.yaml", RunningMode::Edge)
            .unwrap_or_else(|e| panic!("{e}"));
        ProxierSettings::from_config(&loaded.config.modules.edge_proxy)
    }

    #[test]
    fn backend_and_fast_path_come_from_the_config() {
        let default = settings("");
        assert_eq!(default.backend, BackendKind::Auto);
        assert!(default.kernel_fast_path);
        assert!(!default.monotonic_tcp_timestamps);
        let got = settings(
            "    backend: iptables\n    kernelFastPath: false\n    monotonicTcpTimestamps: true\n",
        );
        assert_eq!(got.backend, BackendKind::Iptables);
        assert!(!got.kernel_fast_path);
        assert!(got.monotonic_tcp_timestamps);
        assert_eq!(
            settings("    backend: nftables\n").backend,
            BackendKind::Nftables
        );
    }
}
