//! The tunnel's peers as `/metrics` shows them, by path kind (direct, punched, relayed: three
//! label values, so the cardinality stays bounded whatever the number of peers).
//!
//! The driver answers [`TunnelHandle::peers`](crate::TunnelHandle::peers) asynchronously while a
//! scrape reads synchronously: whoever polls the peers (the agent, each second for
//! `/debug/peers`) hands each report to [`PeerMetrics::update`].

use std::fmt;
use std::sync::{Mutex, PoisonError};

use edgemesh_telemetry::{Kind, Readings, Readout};

use crate::stats::{PathKind, PeerReport};

/// Totals of the latest peer report, by path kind.
#[derive(Debug, Default)]
pub struct PeerMetrics(Mutex<[PathTotals; 3]>);

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

impl PeerMetrics {
    /// Replaces the totals with those of `peers`.
    pub fn update(&self, peers: &[PeerReport]) {
        let mut totals = [PathTotals::default(); 3];
        for peer in peers {
            let Some(i) = PATHS.iter().position(|(kind, _)| *kind == peer.path) else {
                continue;
            };
            totals[i].peers += 1;
            totals[i].streams_open += peer.streams_open;
        }
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = totals;
    }
}

impl Readout for PeerMetrics {
    fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
        let totals = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
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
        )
    }
}

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
        let metrics = std::sync::Arc::new(PeerMetrics::default());
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
        for line in [
            "edgemesh_tunnel_peers{path=\"direct\"} 2",
            "edgemesh_tunnel_peers{path=\"punched\"} 0",
            "edgemesh_tunnel_peers{path=\"relayed\"} 1",
            "edgemesh_tunnel_streams_open{path=\"direct\"} 3",
            "edgemesh_tunnel_streams_open{path=\"relayed\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
