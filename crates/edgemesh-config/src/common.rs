//! `commonConfig`: settings shared by the agent's modules.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::checked::Checked;
use crate::nullable;

/// EdgeMesh's bridge device name.
pub const DEFAULT_BRIDGE_DEVICE_NAME: &str = "edgemesh0";
/// EdgeMesh's bridge device address (DNS listens here; pods' clusterDNS points here).
pub const DEFAULT_BRIDGE_DEVICE_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 96, 16);
/// Default admin endpoint: loopback only, clear of metaServer (10550) and YurtHub (1026x).
pub const DEFAULT_ADMIN_ADDR: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10557));

/// `commonConfig`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CommonConfig {
    /// `dummyDeviceName` (EdgeMesh ≤ 1.9) is accepted as an alias.
    #[serde(alias = "dummyDeviceName")]
    pub bridge_device_name: String,
    /// `dummyDeviceIP` (EdgeMesh ≤ 1.9) is accepted as an alias.
    #[serde(rename = "bridgeDeviceIP", alias = "dummyDeviceIP")]
    pub bridge_device_ip: Checked<Ipv4Addr>,
    /// Accepted for compatibility; edgemesh has no pprof server.
    #[serde(deserialize_with = "nullable")]
    pub pprof_config: PprofConfig,
    /// edgemesh extension: admin endpoint (`/healthz`, `/readyz`, `/metrics`, `/debug/snapshot`).
    pub admin_addr: Checked<SocketAddr>,
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            bridge_device_name: DEFAULT_BRIDGE_DEVICE_NAME.to_owned(),
            bridge_device_ip: Checked::new(DEFAULT_BRIDGE_DEVICE_IP),
            pprof_config: PprofConfig::default(),
            admin_addr: Checked::new(DEFAULT_ADMIN_ADDR),
        }
    }
}

/// `commonConfig.pprofConfig` (Go pprof; accepted, not acted on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PprofConfig {
    pub enable_profiling: bool,
    pub profiling_address: String,
    pub profiling_port: i64,
}
