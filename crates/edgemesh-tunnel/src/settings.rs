//! The tunnel as the agent runs it: EdgeMesh's `modules.edgeTunnel` (and the SOCKS5 part of
//! `modules.edgeProxy`) resolved into [`TunnelSettings`], then [`start`] and [`start_socks5`].
//!
//! The agent starts the tunnel before the data path, so the proxy's dialer can send connections
//! and UDP flows for endpoints on other nodes through it; `/debug/peers` shows its peers and paths.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgemesh_config::{
    AgentConfig, DEFAULT_NODE_CAS, DEFAULT_NODE_CREDENTIALS, EdgeTunnel, MetaServerSecurity,
    PreparedGateway, Transport, UnattestedPeers,
};
use edgemesh_model::SnapshotCell;

use crate::config::{CredentialFiles, NodeIdentityConfig, RelayNode, TunnelConfig};
use crate::error::TunnelError;
use crate::psk::PskMode;
use crate::socks5::Socks5Server;
use crate::{Tunnel, TunnelHandle};

/// `modules.edgeTunnel`, resolved.
#[derive(Debug, Clone)]
pub struct TunnelSettings {
    pub listen_port: u16,
    /// The relays' port (`modules.edgeTunnel.listenPort`): what every agent listens on.
    pub relay_port: u16,
    pub relays: Vec<RelayNode>,
    /// EdgeMesh's PSK file; `None` when `psk.enable` is false.
    pub psk_path: Option<PathBuf>,
    pub psk_mode: PskMode,
    /// `transport: quic`: QUIC next to TCP.
    pub quic: bool,
    /// Where the node's key and the name ↔ key pins are kept.
    pub state_dir: PathBuf,
    /// The node certificate this node attests its name with, the CAs it trusts.
    pub node_identity: NodeIdentityConfig,
    /// `modules.edgeProxy.socks5Proxy`: the bridge device and the address to serve on.
    pub socks5: Option<(String, SocketAddr)>,
    /// Settings edgemesh reads but does not act on, to warn about once.
    pub ignored: Vec<String>,
}

impl TunnelSettings {
    /// The agent's tunnel; `None` when it is off.
    pub fn from_config(config: &AgentConfig, state_dir: PathBuf) -> Option<Self> {
        let metaserver = &config.kube_api_config.meta_server.security;
        let mut settings = Self::from_module(&config.modules.edge_tunnel, metaserver, state_dir)?;
        settings.socks5 = socks5_address(config);
        Some(settings)
    }

    /// The gateway's tunnel (EdgeMesh's: on `listenPort + 1`, beside the agent's on the same
    /// node, with no SOCKS5); `None` when it is off.
    pub fn for_gateway(prepared: &PreparedGateway, state_dir: PathBuf) -> Option<Self> {
        let config = &prepared.config;
        let metaserver = &config.kube_api_config.meta_server.security;
        let mut settings = Self::from_module(&config.modules.edge_tunnel, metaserver, state_dir)?;
        settings.listen_port = prepared.tunnel_port;
        Some(settings)
    }

    fn from_module(
        tunnel: &EdgeTunnel,
        metaserver: &MetaServerSecurity,
        state_dir: PathBuf,
    ) -> Option<Self> {
        if !tunnel.enable {
            return None;
        }
        let mut ignored = Vec::new();
        let psk_mode = match tunnel.psk.mode.get().unwrap_or_default() {
            edgemesh_config::PskMode::Noise => PskMode::Noise,
            edgemesh_config::PskMode::Pnet => PskMode::Pnet,
        };
        let quic = match tunnel.transport.get().unwrap_or(Transport::Tcp) {
            Transport::Tcp => false,
            Transport::Quic if psk_mode == PskMode::Pnet => {
                ignored.push(
                    "modules.edgeTunnel.transport quic needs psk.mode noise (with pnet, the \
                     mesh may hold EdgeMesh Go agents, whose keys anyone can derive from their \
                     node names, and QUIC admits peers by key): using tcp"
                        .into(),
                );
                false
            }
            Transport::Quic => true,
            Transport::Ws => {
                ignored.push("modules.edgeTunnel.transport ws is not built: using tcp".into());
                false
            }
        };
        if tunnel.listen_interfaces != "*" {
            ignored
                .push("modules.edgeTunnel.listenInterfaces: listening on every interface".into());
        }
        Some(Self {
            listen_port: tunnel.listen_port.get().map_or(20006, |p| p.0),
            relay_port: tunnel.listen_port.get().map_or(20006, |p| p.0),
            relays: tunnel.relay_nodes.iter().map(relay_node).collect(),
            psk_path: tunnel.psk.enable.then(|| PathBuf::from(&tunnel.psk.path)),
            psk_mode,
            quic,
            state_dir,
            node_identity: node_identity(tunnel, metaserver, Path::exists),
            socks5: None,
            ignored,
        })
    }
}

/// `modules.edgeTunnel.nodeIdentity`, with empty paths replaced by the defaults that `exists`:
/// kubelet's or edgecore's certificate, KubeEdge's and the cluster's CAs. EdgeMesh's
/// `metaServerSecret` certificate is one Secret mounted on every node, so it never proves a
/// name: it is passed as a shared certificate.
fn node_identity(
    tunnel: &EdgeTunnel,
    metaserver: &MetaServerSecurity,
    exists: impl Fn(&Path) -> bool,
) -> NodeIdentityConfig {
    let identity = &tunnel.node_identity;
    let credential = match identity.cert_file.as_str() {
        "" => DEFAULT_NODE_CREDENTIALS
            .iter()
            .map(|(cert, key)| (Path::new(cert), Path::new(key)))
            .find(|(cert, key)| exists(cert) && exists(key))
            .map(|(cert, key)| (cert.to_owned(), key.to_owned())),
        cert => {
            let key = Some(identity.key_file.as_str()).filter(|k| !k.is_empty());
            Some((cert.into(), key.unwrap_or(cert).into()))
        }
    };
    let ca_files = match identity.ca_files.is_empty() {
        true => DEFAULT_NODE_CAS
            .iter()
            .map(Path::new)
            .filter(|p| exists(p))
            .map(Path::to_owned)
            .collect(),
        false => identity.ca_files.iter().map(PathBuf::from).collect(),
    };
    let unattested = match identity.unattested_peers.get().unwrap_or_default() {
        UnattestedPeers::Auto => crate::config::UnattestedPeers::Auto,
        UnattestedPeers::Refuse => crate::config::UnattestedPeers::Refuse,
        UnattestedPeers::TrustOnFirstUse => crate::config::UnattestedPeers::TrustOnFirstUse,
    };
    NodeIdentityConfig {
        credential: credential.map(|(cert, key)| CredentialFiles { cert, key }),
        ca_files,
        shared_cert_files: vec![metaserver.tls_cert_file.clone()],
        unattested,
    }
}

/// EdgeMesh serves SOCKS5 on the bridge device's address (`169.254.96.16:10800`).
fn socks5_address(config: &AgentConfig) -> Option<(String, SocketAddr)> {
    let socks5 = &config.modules.edge_proxy.socks5_proxy;
    if !socks5.enable {
        return None;
    }
    let common = &config.common_config;
    let ip = common.bridge_device_ip.get()?;
    let port = socks5.listen_port.get()?.0;
    Some((
        common.bridge_device_name.clone(),
        SocketAddr::from((ip, port)),
    ))
}

/// validate() has checked every address, so none is dropped here.
fn relay_node(relay: &edgemesh_config::RelayNode) -> RelayNode {
    RelayNode {
        node_name: relay.node_name.clone(),
        advertise_addresses: relay
            .advertise_address
            .iter()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .collect(),
    }
}

/// Starts the tunnel; its key is created under the state directory on first start.
pub fn start(
    settings: &TunnelSettings,
    node_name: &str,
    cell: Arc<SnapshotCell>,
) -> Result<Tunnel, TunnelError> {
    for warning in &settings.ignored {
        tracing::warn!(%warning, "setting not acted on");
    }
    std::fs::create_dir_all(&settings.state_dir).map_err(|error| TunnelError::StateDir {
        path: settings.state_dir.clone(),
        error,
    })?;
    let mut config = TunnelConfig::new(node_name, settings.state_dir.join("tunnel.key"));
    config.listen_port = settings.listen_port;
    config.relay_port = settings.relay_port;
    config.relays = settings.relays.clone();
    config.psk_path = settings.psk_path.clone();
    config.psk_mode = settings.psk_mode;
    config.quic = settings.quic;
    config.pins_path = Some(settings.state_dir.join("tunnel-pins.json"));
    config.node_identity = settings.node_identity.clone();
    // Who counts as this node's own process for SOCKS5 (peers may dial only the Node object's
    // addresses and endpoints, from the snapshot).
    config.own_addrs = own_addresses();
    let tunnel = Tunnel::start(config, cell).map_err(|error| TunnelError::Start {
        error: Box::new(error),
    })?;
    tracing::info!(
        port = settings.listen_port,
        quic = settings.quic,
        relays = settings.relays.len(),
        "tunnel started"
    );
    Ok(tunnel)
}

/// The host's addresses, except loopback and link-local ones (the bridge device's).
fn own_addresses() -> Vec<IpAddr> {
    let Ok(ips) = edgemesh_host::interface_addresses() else {
        return Vec::new();
    };
    ips.into_iter()
        .filter(|ip| {
            let link_local = match ip {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            !ip.is_loopback() && !link_local
        })
        .collect()
}

/// Serves SOCKS5 on the bridge device's address (created here when DNS has not done it).
pub async fn start_socks5(
    settings: &TunnelSettings,
    handle: TunnelHandle,
) -> Result<(), TunnelError> {
    let Some((device, addr)) = settings.socks5.clone() else {
        return Ok(());
    };
    edgemesh_host::ensure_bridge_device(&device, addr.ip(), 32)
        .await
        .map_err(|error| TunnelError::Socks5Device {
            device: device.clone(),
            ip: addr.ip(),
            error: Box::new(error),
        })?;
    let server =
        Socks5Server::bind(addr, handle)
            .await
            .map_err(|error| TunnelError::Socks5Serve {
                addr,
                error: Box::new(error),
            })?;
    tracing::info!(%addr, "SOCKS5 proxy serving (reach a node by name through the tunnel)");
    tokio::spawn(server.serve());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgemesh_config::RunningMode;

    fn settings(tunnel_yaml: &str) -> TunnelSettings {
        let yaml = format!("modules:\n  edgeTunnel:\n    enable: true\n{tunnel_yaml}");
        let loaded = AgentConfig::from_yaml(&yaml, "test.yaml", RunningMode::Edge)
            .unwrap_or_else(|e| panic!("{e}"));
        TunnelSettings::from_config(&loaded.config, PathBuf::from("/state"))
            .unwrap_or_else(|| panic!("tunnel enabled"))
    }

    fn identity(tunnel_yaml: &str, present: &[&str]) -> NodeIdentityConfig {
        let yaml = format!("modules:\n  edgeTunnel:\n    enable: true\n{tunnel_yaml}");
        let loaded = AgentConfig::from_yaml(&yaml, "test.yaml", RunningMode::Edge)
            .unwrap_or_else(|e| panic!("{e}"));
        let config = &loaded.config;
        let metaserver = &config.kube_api_config.meta_server.security;
        node_identity(&config.modules.edge_tunnel, metaserver, |p| {
            present.iter().any(|q| Path::new(q) == p)
        })
    }

    #[test]
    fn node_identity_defaults_take_the_files_that_exist() {
        let kubelet = "/var/lib/kubelet/pki/kubelet-client-current.pem";
        let sa_ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
        let cloud = identity("", &[kubelet, sa_ca]);
        let cred = cloud.credential.unwrap_or_else(|| panic!("kubelet's"));
        assert_eq!(
            (cred.cert.to_str(), cred.key.to_str()),
            (Some(kubelet), Some(kubelet))
        );
        assert_eq!(cloud.ca_files, vec![PathBuf::from(sa_ca)]);
        let edge_files = [
            "/etc/kubeedge/certs/server.crt",
            "/etc/kubeedge/certs/server.key",
            "/etc/kubeedge/ca/rootCA.crt",
            "/etc/edgemesh/metaserver/rootCA.crt",
        ];
        let edge = identity("", &edge_files);
        let cred = edge.credential.unwrap_or_else(|| panic!("edgecore's"));
        assert_eq!(cred.key, PathBuf::from("/etc/kubeedge/certs/server.key"));
        assert_eq!(edge.ca_files.len(), 2);
        // The metaServerSecret certificate is every node's: never a credential, always shared.
        assert_eq!(
            edge.shared_cert_files,
            vec![PathBuf::from("/etc/edgemesh/metaserver/server.crt")]
        );
        let none = identity("", &[]);
        assert!(none.credential.is_none() && none.ca_files.is_empty());
        assert_eq!(none.unattested, crate::config::UnattestedPeers::Auto);
    }

    #[test]
    fn node_identity_explicit_files_win_and_a_lone_cert_file_holds_the_key() {
        let yaml = "    nodeIdentity:\n      certFile: /pki/node.pem\n      caFiles: [/pki/ca.crt]\n      unattestedPeers: refuse\n";
        let got = identity(yaml, &["/var/lib/kubelet/pki/kubelet-client-current.pem"]);
        let cred = got.credential.unwrap_or_else(|| panic!("explicit"));
        assert_eq!(
            (cred.cert.to_str(), cred.key.to_str()),
            (Some("/pki/node.pem"), Some("/pki/node.pem"))
        );
        assert_eq!(got.ca_files, vec![PathBuf::from("/pki/ca.crt")]);
        assert_eq!(got.unattested, crate::config::UnattestedPeers::Refuse);
    }

    #[test]
    fn transport_quic_turns_quic_on_only_with_the_noise_psk_mode() {
        assert!(!settings("").quic, "tcp by default");
        let quic = settings("    transport: quic\n");
        assert!(quic.quic && quic.ignored.is_empty(), "{:?}", quic.ignored);
        let pnet = settings("    transport: quic\n    psk:\n      mode: pnet\n");
        assert!(!pnet.quic);
        assert!(pnet.ignored[0].contains("quic needs psk.mode noise"));
        let ws = settings("    transport: ws\n");
        assert!(!ws.quic && ws.ignored[0].contains("ws is not built"));
    }
}
