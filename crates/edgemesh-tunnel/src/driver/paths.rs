//! Several connections to one peer (relayed, punched, direct; TCP, QUIC): which one new streams
//! should use, and closing the others once their streams have ended.

use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, dcutr};

use super::Driver;
use libp2p::swarm::dial_opts::PeerCondition;

use super::peer::{Conn, Draining, PunchRetry};
use crate::quic_gate::is_direct_quic;
use crate::stats::{self, PathKind, TransportKind};

/// How long worse connections outlive a better path to the same peer at least: time for the
/// peer to see the better path too (its hole punch or dial ends a few ms after ours) and move
/// its new streams there.
const SUPERSEDE_GRACE: Duration = Duration::from_secs(2);

impl Conn {
    /// Where this connection stands among a peer's ([`stats::preference`]), except that on a
    /// link with a relay TCP and QUIC rank the same: reservations and circuits ride on the TCP
    /// connection, and closing it would cut them.
    pub(super) fn rank(&self, relay_link: bool) -> u8 {
        let transport = match relay_link {
            true => TransportKind::Tcp,
            false => self.transport(),
        };
        stats::preference(self.path, transport)
    }

    /// QUIC or TCP, read from the remote address.
    pub(super) fn transport(&self) -> TransportKind {
        match is_direct_quic(&self.remote) {
            true => TransportKind::Quic,
            false => TransportKind::Tcp,
        }
    }
}

impl Driver {
    /// A path of rank `better` has come up (direct beats relayed, QUIC beats TCP): the worse
    /// connections to the same peer are closed so that new streams take the better one
    /// (libp2p-stream picks any connection) — but not at once: the peer learns of the better
    /// path a moment after us and opens streams on the old one meanwhile (a CONNECT in flight
    /// on a relayed connection its callee had just closed came back to the client as a reset),
    /// so they are kept for [`SUPERSEDE_GRACE`], and longer while tunnel streams are open with
    /// the peer (they may ride on a worse connection, and cutting them would break a live
    /// session). [`Driver::finish_draining`] closes them later. Measured against the *new*
    /// connection, not the best known: a peer that restarted leaves a dead direct connection
    /// behind for up to a ping timeout, and the relayed connection it comes back on must not be
    /// closed in its favour.
    pub(super) fn drop_superseded(&mut self, peer: PeerId, better: u8) {
        let now = Instant::now();
        let worse = self.conns_worse_than(peer, better);
        let open = match worse.is_empty() {
            true => 0,
            false => stats::load(&self.shared.counters(peer).streams_open),
        };
        let Some(links) = self.peers.get_mut(&peer).and_then(|s| s.links_mut()) else {
            return;
        };
        if worse.is_empty() {
            links.draining = None;
            return;
        }
        let since = match links.draining {
            Some(d) if d.better == better => d.since,
            _ => now,
        };
        if open > 0 || now.saturating_duration_since(since) < SUPERSEDE_GRACE {
            let first = links.draining.is_none();
            links.draining = Some(Draining { better, since });
            if open > 0 && first {
                tracing::info!(peer.id = %peer, open, "better path up: keeping the previous connection until its streams end");
            }
            return;
        }
        links.draining = None;
        for (id, remote) in worse {
            tracing::info!(peer.id = %peer, peer.addr = %remote, "better path up: closing this connection");
            self.swarm.close_connection(id);
        }
    }

    pub(super) fn conns_worse_than(
        &self,
        peer: PeerId,
        rank: u8,
    ) -> Vec<(ConnectionId, Multiaddr)> {
        let Some(links) = self.peers.links(&peer) else {
            return Vec::new();
        };
        let relay_link = self.is_relay_link(peer);
        links
            .conns
            .iter()
            .filter(|(_, c)| c.rank(relay_link) > rank)
            .map(|(id, c)| (*id, c.remote.clone()))
            .collect()
    }

    /// Whether `peer` is one of our relays, or we are a relay (and `peer` may hold a reservation).
    pub(super) fn is_relay_link(&self, peer: PeerId) -> bool {
        self.shared.config.is_relay() || self.relays.iter().any(|r| r.peer == Some(peer))
    }

    /// Closes the superseded connections kept for streams that have ended since.
    pub(super) fn finish_draining(&mut self) {
        let draining: Vec<(PeerId, u8)> = self
            .peers
            .iter()
            .filter_map(|(peer, s)| Some((*peer, s.links()?.draining?.better)))
            .collect();
        for (peer, better) in draining {
            self.drop_superseded(peer, better);
        }
    }

    pub(super) fn on_punch(&mut self, peer: PeerId, result: Result<ConnectionId, dcutr::Error>) {
        match result {
            Ok(id) => {
                tracing::info!(peer.id = %peer, "hole punch succeeded: direct path");
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.punch_retry = None;
                }
                let relay_link = self.is_relay_link(peer);
                let links = self.peers.get_mut(&peer).and_then(|s| s.links_mut());
                if let Some(conn) = links.and_then(|l| l.conns.get_mut(&id)) {
                    conn.path = PathKind::Punched;
                    let rank = conn.rank(relay_link);
                    self.drop_superseded(peer, rank);
                }
            }
            Err(error) => {
                tracing::warn!(peer.id = %peer, %error, "hole punch failed (symmetric NAT or filtered): staying on the relay");
                self.schedule_punch_retry(peer);
            }
        }
    }

    /// Plans another punch to `peer` after a failed one. A punch runs once per relayed
    /// connection (DCUtR, three dials), with the candidates known at that moment: right after
    /// start-up this node may not yet know the address its relay sees it at, and offers none
    /// that the peer can reach. Only the side with the lower peer id retries, so that the two
    /// do not both open a circuit for it.
    fn schedule_punch_retry(&mut self, peer: PeerId) {
        self.redial_relays_over_quic();
        if *self.swarm.local_peer_id() > peer {
            return;
        }
        let state = self.peers.entry(peer);
        let tried = state.punch_retry.map_or(0, |r| r.tried);
        state.punch_retry = (tried < PUNCH_RETRIES).then(|| PunchRetry {
            at: Instant::now() + PUNCH_RETRY_AFTER * u32::from(tried + 1),
            tried,
        });
    }

    /// Punches again (a new relayed connection, which DCUtR upgrades) to peers whose punch
    /// failed, once their retry is due, while the relay is still their only path.
    pub(super) fn retry_punches(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| {
                s.punch_retry
                    .is_some_and(|r| r.at <= now && r.tried < PUNCH_RETRIES)
            })
            .filter(|(_, s)| !s.has_path(|p| p != PathKind::Relayed))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in due {
            let addrs = self.circuit_addrs(peer);
            if addrs.is_empty() {
                continue;
            }
            // The try is spent now: a retry whose relayed dial fails reports no punch, and is
            // tried again after `PUNCH_RESULT_WAIT` (still at most `PUNCH_RETRIES` in all).
            if let Some(state) = self.peers.get_mut(&peer)
                && let Some(retry) = state.punch_retry.as_mut()
            {
                retry.tried += 1;
                retry.at = now + PUNCH_RESULT_WAIT;
            }
            tracing::info!(peer.id = %peer, "trying the hole punch again over a new relayed connection");
            if let Err(error) = self.dial(peer, addrs, PeerCondition::Always) {
                tracing::debug!(peer.id = %peer, %error, "punch retry not started");
            }
        }
    }
}

/// Punches tried again after a failed one, at most.
const PUNCH_RETRIES: u8 = 3;
/// How long a retry waits for its punch's result before the next one may start.
const PUNCH_RESULT_WAIT: Duration = Duration::from_secs(20);
/// The wait before the first retry; the n-th waits n times as long.
const PUNCH_RETRY_AFTER: Duration = Duration::from_secs(5);
