//! The tunnel (`modules.edgeTunnel`): node-to-node streams for endpoints on other nodes.
//!
//! The agent starts it before the data path, so the proxy's dialer can send connections and UDP
//! flows for endpoints on other nodes through it; `/debug/peers` shows its peers and paths.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use anyhow::Context;
use edgemesh_config::{EdgeTunnel, Transport};
use edgemesh_model::SnapshotCell;
use edgemesh_tunnel::{RelayNode, Tunnel, TunnelConfig, TunnelHandle};

/// `modules.edgeTunnel`, resolved.
#[derive(Debug, Clone)]
pub struct TunnelSettings {
    pub listen_port: u16,
    pub relays: Vec<RelayNode>,
    /// EdgeMesh's PSK file; `None` when `psk.enable` is false.
    pub psk_path: Option<PathBuf>,
    /// Where the node's key and the name ↔ key pins are kept.
    pub state_dir: PathBuf,
    /// Settings edgemesh reads but does not act on, to warn about once.
    pub ignored: Vec<String>,
}

impl TunnelSettings {
    /// `None` when the tunnel is off.
    pub fn from_config(tunnel: &EdgeTunnel, state_dir: PathBuf) -> Option<Self> {
        if !tunnel.enable {
            return None;
        }
        let mut ignored = Vec::new();
        if let Some(transport) = tunnel.transport.get().filter(|t| *t != Transport::Tcp) {
            ignored.push(format!(
                "modules.edgeTunnel.transport {transport:?}: only tcp is built, using tcp"
            ));
        }
        if tunnel.listen_interfaces != "*" {
            ignored
                .push("modules.edgeTunnel.listenInterfaces: listening on every interface".into());
        }
        Some(Self {
            listen_port: tunnel.listen_port.get().map_or(20006, |p| p.0),
            relays: tunnel.relay_nodes.iter().map(relay_node).collect(),
            psk_path: tunnel.psk.enable.then(|| PathBuf::from(&tunnel.psk.path)),
            state_dir,
            ignored,
        })
    }
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
) -> anyhow::Result<Tunnel> {
    for warning in &settings.ignored {
        tracing::warn!("{warning}");
    }
    std::fs::create_dir_all(&settings.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {} (--state-dir)",
            settings.state_dir.display()
        )
    })?;
    let mut config = TunnelConfig::new(node_name, settings.state_dir.join("tunnel.key"));
    config.listen_port = settings.listen_port;
    config.relays = settings.relays.clone();
    config.psk_path = settings.psk_path.clone();
    config.pins_path = Some(settings.state_dir.join("tunnel-pins.json"));
    let tunnel =
        Tunnel::start(config, cell).context("cannot start the tunnel (modules.edgeTunnel)")?;
    tracing::info!(
        port = settings.listen_port,
        relays = settings.relays.len(),
        "tunnel started"
    );
    Ok(tunnel)
}

/// The latest `/debug/peers` body, refreshed every second: admin routes answer synchronously
/// and the tunnel's view is gathered by its own task.
pub type PeersReport = Arc<std::sync::Mutex<Vec<u8>>>;

pub fn report_peers(handle: TunnelHandle) -> PeersReport {
    let report: PeersReport = Arc::new(std::sync::Mutex::new(b"[]".to_vec()));
    let latest = Arc::clone(&report);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PEERS_REFRESH);
        loop {
            tick.tick().await;
            let body = match handle.peers().await {
                Ok(peers) => serde_json::to_vec_pretty(&peers).unwrap_or_default(),
                Err(e) => format!("{{\"error\": \"{e}\"}}").into_bytes(),
            };
            *latest.lock().unwrap_or_else(PoisonError::into_inner) = body;
        }
    });
    report
}

const PEERS_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);
