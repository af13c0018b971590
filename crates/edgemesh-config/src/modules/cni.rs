//! `modules.edgeCNI`: EdgeMesh's beta pod-to-pod routing. Accepted so EdgeMesh configs load;
//! edgemesh does not implement it (a non-goal for now) and warns when it is enabled.

use serde::Deserialize;

use crate::nullable;

/// `modules.edgeCNI`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EdgeCni {
    pub enable: bool,
    pub tun_mode: i64,
    #[serde(rename = "meshCIDRConfig", deserialize_with = "nullable")]
    pub mesh_cidr_config: MeshCidrConfig,
}

/// `modules.edgeCNI.meshCIDRConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MeshCidrConfig {
    #[serde(rename = "cloudCIDR", deserialize_with = "nullable")]
    pub cloud_cidr: Vec<String>,
    #[serde(rename = "edgeCIDR", deserialize_with = "nullable")]
    pub edge_cidr: Vec<String>,
}
