//! A second, tolerant look at the file for which keys were *written* (the typed parse cannot
//! tell a key the file set to its default from a key the file left out).

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::error::Warning;

/// Keys whose presence matters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Present {
    pub edge_dns_enable: bool,
    pub content_type: bool,
    pub dummy_device_name: bool,
    pub dummy_device_ip: bool,
}

impl Present {
    /// Runs after the typed parse succeeded, so the text is valid YAML of the right shape.
    pub(crate) fn scan(text: &str) -> Self {
        let probe: Option<Probe> =
            serde_saphyr::from_str_with_options(text, super::yaml_options()).unwrap_or_default();
        let probe = probe.unwrap_or_default();
        let api = probe.kube_api_config.unwrap_or_default();
        let common = probe.common_config.unwrap_or_default();
        let dns = probe
            .modules
            .unwrap_or_default()
            .edge_dns
            .unwrap_or_default();
        Self {
            edge_dns_enable: dns.enable.is_some(),
            content_type: api.content_type.is_some(),
            dummy_device_name: common.dummy_device_name.is_some(),
            dummy_device_ip: common.dummy_device_ip.is_some(),
        }
    }

    /// EdgeMesh ≤ 1.9 names of the bridge device keys, which edgemesh reads as aliases.
    pub(crate) fn legacy_alias_warnings(&self) -> Vec<Warning> {
        let aliases = [
            (
                self.dummy_device_name,
                "dummyDeviceName",
                "bridgeDeviceName",
            ),
            (self.dummy_device_ip, "dummyDeviceIP", "bridgeDeviceIP"),
        ];
        aliases
            .into_iter()
            .filter(|(present, _, _)| *present)
            .map(|(_, old, new)| {
                let message =
                    format!("key of an older EdgeMesh release, read as commonConfig.{new}");
                Warning::new(format!("commonConfig.{old}"), message)
            })
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(rename = "kubeAPIConfig")]
    kube_api_config: Option<ProbeApi>,
    common_config: Option<ProbeCommon>,
    modules: Option<ProbeModules>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProbeApi {
    content_type: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct ProbeCommon {
    #[serde(rename = "dummyDeviceName")]
    dummy_device_name: Option<IgnoredAny>,
    #[serde(rename = "dummyDeviceIP")]
    dummy_device_ip: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct ProbeModules {
    #[serde(rename = "edgeDNS")]
    edge_dns: Option<ProbeDns>,
}

#[derive(Debug, Default, Deserialize)]
struct ProbeDns {
    enable: Option<IgnoredAny>,
}
