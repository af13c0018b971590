//! The tunnel's peers as the admin endpoint shows them: the `/debug/peers` body, and in
//! `/metrics` the peers and open streams by path kind (direct, punched, relayed: three label
//! values, so the cardinality stays bounded whatever the number of peers).
//!
//! The driver answers [`TunnelHandle::peers`] asynchronously while admin routes answer
//! synchronously: one task asks each second and keeps the latest answer here.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use edgemesh_telemetry::{Kind, Readings, Readout};

use crate::TunnelHandle;
use crate::stats::{PathKind, PeerReport};

/// How often the peers are asked for.
const REFRESH: Duration = Duration::from_secs(1);

/// The latest peer report, as JSON and as totals by path kind.
#[derive(Debug)]
pub struct PeersView {
    body: Mutex<Vec<u8>>,
    totals: Mutex<[PathTotals; 3]>,
    /// For the handshake failures, read when scraped (`None` in unit tests).
    handle: Option<TunnelHandle>,
}

#[derive(Clone, Copy, Debug, Default)]
struct PathTotals {
    peers: u64,
    streams_open: u64,
}

const PATHS: [(PathKind, &str); 3] = [
    (PathKind::Direct, "direct"),
    (PathKind::Punched, "punched"),
    (PathKind::Relayed, "relayed"),
];

impl PeersView {
    /// Starts the task that refreshes the view from `handle` every second.
    pub fn start(handle: TunnelHandle) -> Arc<Self> {
        let view = Arc::new(Self {
            body: Mutex::new(b"[]".to_vec()),
            totals: Mutex::default(),
            handle: Some(handle.clone()),
        });
        let latest = Arc::clone(&view);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                match handle.peers().await {
                    Ok(peers) => latest.update(&peers),
                    Err(e) => latest.set_body(format!("{{\"error\": \"{e}\"}}").into_bytes()),
                }
            }
        });
        view
    }

    /// The `/debug/peers` body.
    pub fn body(&self) -> Vec<u8> {
        self.body
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The peers by their best path, for `/readyz`: "peers: 2 direct, 0 punched, 1 relayed".
    pub fn summary(&self) -> String {
        let totals = *self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        let parts: Vec<String> = PATHS
            .iter()
            .zip(&totals)
            .map(|((_, label), t)| format!("{} {label}", t.peers))
            .collect();
        format!("peers: {}", parts.join(", "))
    }

    fn set_body(&self, body: Vec<u8>) {
        *self.body.lock().unwrap_or_else(PoisonError::into_inner) = body;
    }

    fn update(&self, peers: &[PeerReport]) {
        let mut totals = [PathTotals::default(); 3];
        for peer in peers {
            let Some(i) = PATHS.iter().position(|(kind, _)| *kind == peer.path) else {
                continue;
            };
            totals[i].peers += 1;
            totals[i].streams_open += peer.streams_open;
        }
        *self.totals.lock().unwrap_or_else(PoisonError::into_inner) = totals;
        self.set_body(serde_json::to_vec_pretty(peers).unwrap_or_default());
    }
}

impl Readout for PeersView {
    fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
        let totals = *self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        let by_path = |value: fn(&PathTotals) -> u64| -> Vec<(&str, u64)> {
            PATHS
                .iter()
                .zip(&totals)
                .map(|((_, label), t)| (*label, value(t)))
                .collect()
        };
        out.by_label(
            Kind::Gauge,
            "edgemesh_tunnel_peers",
            "Peers connected, by the best path to each.",
            ("path", &by_path(|t| t.peers)),
        )?;
        out.by_label(
            Kind::Gauge,
            "edgemesh_tunnel_streams_open",
            "Tunnel streams open, by the path of their peer.",
            ("path", &by_path(|t| t.streams_open)),
        )?;
        // Counters the tunnel keeps itself (0 before it runs).
        let counters: [HandleCounter; 2] = [
            (
                "edgemesh_tunnel_handshake_failures",
                "Transport handshakes that failed, most likely on the PSK (another key or psk.mode).",
                TunnelHandle::handshake_failures,
            ),
            (
                "edgemesh_tunnel_udp_flows_yielded",
                "Remote UDP flows ended after 2 s idle to give their stream slot to waiting opens.",
                TunnelHandle::udp_flows_yielded,
            ),
        ];
        for (name, help, count) in counters {
            let value = self.handle.as_ref().map_or(0, count);
            out.one(Kind::Counter, name, help, value)?;
        }
        Ok(())
    }
}

/// A counter the tunnel keeps itself: name, help, and how to read it from the handle.
type HandleCounter = (&'static str, &'static str, fn(&TunnelHandle) -> u64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::TransportKind;
    use edgemesh_telemetry::Registry;

    fn peer(path: PathKind, streams_open: u64) -> PeerReport {
        PeerReport {
            peer_id: "12D3KooW".into(),
            node_name: None,
            path,
            transport: TransportKind::Tcp,
            addresses: Vec::new(),
            is_relay: false,
            rtt_ms: None,
            streams_open,
            streams_total: streams_open,
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    #[test]
    fn peers_and_streams_are_summed_by_path() {
        let metrics = Arc::new(PeersView {
            body: Mutex::default(),
            totals: Mutex::default(),
            handle: None,
        });
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.update(&[
            peer(PathKind::Direct, 2),
            peer(PathKind::Direct, 1),
            peer(PathKind::Relayed, 4),
        ]);
        let mut text = String::new();
        edgemesh_telemetry::prometheus_client::encoding::text::encode(&mut text, &registry)
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&metrics.body()).unwrap();
        assert_eq!(body.as_array().map(Vec::len), Some(3));
        for line in [
            "edgemesh_tunnel_peers{path=\"direct\"} 2",
            "edgemesh_tunnel_peers{path=\"punched\"} 0",
            "edgemesh_tunnel_peers{path=\"relayed\"} 1",
            "edgemesh_tunnel_streams_open{path=\"direct\"} 3",
            "edgemesh_tunnel_streams_open{path=\"relayed\"} 4",
            "edgemesh_tunnel_handshake_failures_total 0",
            "edgemesh_tunnel_udp_flows_yielded_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
