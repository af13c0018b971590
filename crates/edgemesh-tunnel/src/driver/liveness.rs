//! Dead paths: a connection whose peer went silent (a cable cut, a host gone, packets dropped
//! with no RST or FIN) must be closed within seconds, so that new streams take another path
//! (another relay, a direct one) instead of waiting on it. TCP notices on its own only after
//! many minutes of retransmissions, and libp2p's ping handler reports a failure only after two
//! (the second one behind a 10 s protocol negotiation timeout): 26 s measured.
//!
//! So the driver judges each connection itself, every [`CHECK_EVERY`]. A sign of life is a
//! ping answered on the connection or any bytes its socket read ([`Fate::heard_at`]: a busy
//! connection may queue a ping behind seconds of bulk data, but then the peer's data or window
//! updates arrive). How long a connection may stay silent depends on its pace
//! (`keepalive.rs`), which the check sets too:
//!
//! - fast (ping every second) while its peer has tunnel streams open or opening, and always to
//!   our relays (the circuits of every relayed path ride on them): dead after [`DEAD_AFTER`] of
//!   silence, counted from the switch to fast at the earliest (the switch pings at once). A cut
//!   under traffic is declared within `DEAD_AFTER + CHECK_EVERY`; the first stream to an idle
//!   peer over a path cut meanwhile waits at most `CHECK_EVERY + DEAD_AFTER + CHECK_EVERY`.
//! - slow (every [`SLOW`]) otherwise: dead after `SLOW + DEAD_AFTER`.
//!
//! A fast connection whose ping round trip exceeds `DEAD_AFTER - FAST` (2 s) with no other
//! bytes from its peer counts as dead.
//!
//! Closing the connection fails what waits on it at once: stream opens and CONNECT answers
//! pending on it end with an error, and the client (`client.rs`) connects again over the paths
//! that remain.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;

use super::Driver;
#[cfg(doc)]
use crate::fate::Fate;
use crate::keepalive::{self, DEAD_AFTER, FAST, Pace, SLOW};
use crate::stats;

/// How often the connections are judged (and their pace set).
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(500);
/// A check this late after the previous one (0.4 s past due; on time it is a few ms late) finds
/// this host short of CPU: its own sockets may be unread and its peers' answers late, so it
/// judges no connection (seen: a LAN peer declared dead under a load of 6 on 2 cores, the check
/// 0.5–1 s late).
const STALLED: Duration = Duration::from_millis(900);

// A cut is declared within 4 s of the last sign of life (the issue asks for 5 s with the
// redial), and a live connection answers a fast ping well within DEAD_AFTER.
const _: () = assert!(DEAD_AFTER.as_millis() + CHECK_EVERY.as_millis() <= 4000);
const _: () = assert!(2 * FAST.as_millis() <= DEAD_AFTER.as_millis());

/// What the check decided for one connection.
enum Verdict {
    Pace(Pace),
    Dead(Duration),
}

impl Driver {
    pub(super) fn on_ping(&mut self, event: keepalive::Event) {
        let keepalive::Event {
            peer,
            connection,
            result,
        } = event;
        let Some(links) = self.peers.get_mut(&peer).and_then(|s| s.links_mut()) else {
            return;
        };
        let conn = links.conns.get_mut(&connection);
        match result {
            Ok(rtt) => {
                links.rtt = Some(rtt);
                if let Some(conn) = conn {
                    conn.liveness.alive_at = Instant::now();
                }
            }
            // A peer without ping (none of ours, nor EdgeMesh's Go agents, but a libp2p host
            // may disable it): only its own end closes its connection.
            Err(keepalive::Failure::Unsupported) => {
                if let Some(conn) = conn {
                    conn.liveness.answers_pings = false;
                }
            }
            // The check judges by the silence, which counts other bytes too.
            Err(error) => {
                tracing::debug!(peer.id = %peer, %error, "ping failed");
            }
        }
    }

    /// Sets each connection's pace, and closes those silent for longer than theirs allows;
    /// none when this check comes `since_last` after the previous one, late enough to say
    /// that this process was starved of CPU (the connections' bytes may be waiting unread).
    pub(super) fn close_dead(&mut self, now: Instant, since_last: Duration) {
        let stalled = since_last > STALLED;
        if stalled {
            tracing::debug!(
                ?since_last,
                "liveness check late: no connection judged this time"
            );
        }
        let mut verdicts = Vec::new();
        for (peer, state) in self.peers.iter() {
            let Some(links) = state.links() else { continue };
            let pace = self.pace_for(*peer);
            for (id, conn) in &links.conns {
                let l = &conn.liveness;
                if pace != l.pace {
                    verdicts.push((*peer, *id, Verdict::Pace(pace)));
                    continue;
                }
                let allowed = match l.pace {
                    Pace::Fast => DEAD_AFTER,
                    Pace::Slow => SLOW + DEAD_AFTER,
                };
                let since = match l.pace {
                    Pace::Fast => l.last_sign().max(l.pace_since),
                    Pace::Slow => l.last_sign(),
                };
                let silent = now.saturating_duration_since(since);
                if l.answers_pings && !l.dead && silent > allowed && !stalled {
                    verdicts.push((*peer, *id, Verdict::Dead(silent)));
                }
            }
        }
        for (peer, id, verdict) in verdicts {
            match verdict {
                Verdict::Pace(pace) => self.set_pace(peer, id, pace, now),
                Verdict::Dead(silent) => {
                    self.declare_dead(peer, id, &format!("nothing heard for {silent:?}"));
                }
            }
        }
    }

    /// Fast while `peer` has tunnel streams open or opening, or is one of our relays.
    fn pace_for(&self, peer: PeerId) -> Pace {
        let busy = stats::load(&self.shared.counters(peer).streams_open) > 0;
        let our_relay = self.relays.iter().any(|r| r.peer == Some(peer));
        match busy || our_relay {
            true => Pace::Fast,
            false => Pace::Slow,
        }
    }

    fn set_pace(&mut self, peer: PeerId, id: ConnectionId, pace: Pace, now: Instant) {
        let links = self.peers.get_mut(&peer).and_then(|s| s.links_mut());
        let Some(conn) = links.and_then(|l| l.conns.get_mut(&id)) else {
            return;
        };
        conn.liveness.pace = pace;
        conn.liveness.pace_since = now;
        self.swarm
            .behaviour_mut()
            .keepalive
            .set_pace(peer, id, pace);
    }

    /// Closes connection `id` to `peer`, whose peer went silent.
    fn declare_dead(&mut self, peer: PeerId, id: ConnectionId, why: &str) {
        let links = self.peers.get_mut(&peer).and_then(|s| s.links_mut());
        let Some(conn) = links.and_then(|l| l.conns.get_mut(&id)) else {
            return;
        };
        if std::mem::replace(&mut conn.liveness.dead, true) {
            return;
        }
        // A peer (or relay) that vanished without closing its sockets: give up on this
        // connection so that the next stream takes another path (another relay).
        tracing::warn!(peer.id = %peer, peer.addr = %conn.remote, reason = %why, "peer does not answer pings: closing this connection");
        self.swarm.close_connection(id);
    }
}
