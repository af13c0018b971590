//! Dead paths: a connection whose peer went silent (a cable cut, a host gone, packets dropped
//! with no RST or FIN) must be closed within seconds, so that new streams take another path
//! (another relay, a direct one) instead of waiting on it. TCP notices on its own only after
//! many minutes of retransmissions, and libp2p's ping handler reports a failure only after two
//! (the second one behind a 10 s protocol negotiation timeout): ~30 s measured.
//!
//! So the driver judges each connection itself. Ping runs every [`PING_INTERVAL`] on every
//! connection; a connection that showed its peer alive within [`DEAD_AFTER`] is kept, and
//! "alive" is a ping answered on it or any bytes its socket read ([`Fate::heard_at`]: a busy
//! connection may queue a ping behind seconds of bulk data, but then the peer's data or window
//! updates arrive). The check runs every [`CHECK_EVERY`]: a silent cut is declared within
//! `DEAD_AFTER + CHECK_EVERY` of the last sign of life. An idle connection whose ping round
//! trip exceeds `DEAD_AFTER - PING_INTERVAL` (2 s) counts as dead.
//!
//! Closing the connection fails what waits on it at once: stream opens and CONNECT answers
//! pending on it end with an error and the client (`client.rs`) connects again, over the paths
//! that remain.

use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, ping};

use super::Driver;
#[cfg(doc)]
use crate::fate::Fate;

/// How often every connection is pinged (ping is ~100 bytes each way on the wire).
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(1);
/// Silence after which a connection is declared dead (and libp2p's own ping timeout).
pub(crate) const DEAD_AFTER: Duration = Duration::from_secs(3);
/// How often the connections are judged.
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(500);

// A cut is declared within 4 s of the last sign of life (the issue asks for 5 s with the
// redial), and a live idle connection answers a ping well within DEAD_AFTER.
const _: () = assert!(DEAD_AFTER.as_millis() + CHECK_EVERY.as_millis() <= 4000);
const _: () = assert!(2 * PING_INTERVAL.as_millis() <= DEAD_AFTER.as_millis());

impl Driver {
    pub(super) fn on_ping(&mut self, event: ping::Event) {
        let ping::Event {
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
            Err(ping::Failure::Unsupported) => {
                if let Some(conn) = conn {
                    conn.liveness.answers_pings = false;
                }
            }
            // libp2p's handler reports only its second failure in a row: the connection has
            // been silent for long, whatever the check below has seen.
            Err(error) => self.declare_dead(peer, connection, &error.to_string()),
        }
    }

    /// Closes every connection silent for longer than [`DEAD_AFTER`] at `now`.
    pub(super) fn close_dead(&mut self, now: Instant) {
        let mut dead = Vec::new();
        for (peer, state) in self.peers.iter() {
            let Some(links) = state.links() else { continue };
            for (id, conn) in &links.conns {
                let l = &conn.liveness;
                let silent = now.saturating_duration_since(l.last_sign());
                if l.answers_pings && !l.dead && silent > DEAD_AFTER {
                    dead.push((*peer, *id, silent));
                }
            }
        }
        for (peer, id, silent) in dead {
            let why = format!("nothing heard for {silent:?}");
            self.declare_dead(peer, id, &why);
        }
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
