//! What the driver knows of each peer, in one map: forgetting a peer is one `remove`, and no
//! entry outlives what it describes.
//!
//! Shaped like kube-runtime's watcher `State`: each [`Phase`] carries the data that exists only
//! in that phase (the waiters of a dial, the connections and their RTT), so a peer cannot hold
//! connection data once it is disconnected. What does outlive a connection (the LAN addresses
//! mDNS announced, a QUIC dial in flight, the LAN redials left, for a while that we met it
//! through a relay) sits beside the phase, and the entry goes once none of it is left
//! ([`Peers::forget_if_idle`], and [`Peers::forget_idle`] on the tick).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use crate::command::Waiter;
use crate::fate::Fate;
use crate::keepalive::Pace;
use crate::stats::PathKind;

/// One open connection to a peer.
#[derive(Debug)]
pub(super) struct Conn {
    pub remote: Multiaddr,
    pub path: PathKind,
    /// Whether its peer is still there (`liveness.rs`).
    pub liveness: Liveness,
}

impl Conn {
    pub fn new(remote: Multiaddr, path: PathKind) -> Self {
        Conn {
            remote,
            path,
            liveness: Liveness::new(Instant::now()),
        }
    }
}

/// What the dead-path check knows of one connection.
#[derive(Debug)]
pub(super) struct Liveness {
    /// When it last showed its peer alive by a ping answered (or its opening).
    pub alive_at: Instant,
    /// When its socket last brought bytes ([`Fate::heard_at`]); none when the transport did
    /// not register it.
    pub fate: Option<Arc<Fate>>,
    /// False once the peer said it does not speak ping: then only its end closes it.
    pub answers_pings: bool,
    /// How often it is pinged now, and since when.
    pub pace: Pace,
    pub pace_since: Instant,
    /// Declared dead and being closed: not declared again.
    pub dead: bool,
}

impl Liveness {
    pub fn new(now: Instant) -> Self {
        Liveness {
            alive_at: now,
            fate: None,
            answers_pings: true,
            // As a new connection's pings start (`keepalive.rs`).
            pace: Pace::Fast,
            pace_since: now,
            dead: false,
        }
    }

    /// When the peer last showed itself alive on this connection.
    pub fn last_sign(&self) -> Instant {
        let heard = self.fate.as_ref().map(|f| f.heard_at());
        heard.map_or(self.alive_at, |h| h.max(self.alive_at))
    }
}

/// Everything the driver holds about one peer.
#[derive(Debug, Default)]
pub(super) struct PeerState {
    pub phase: Phase,
    /// Its addresses in this LAN, as mDNS announced them: a LAN peer is dialled there (never
    /// through a relay), also after its connections closed.
    pub lan_addrs: Vec<Multiaddr>,
    /// How many more times the tick redials this LAN peer while it is not connected directly.
    pub lan_redials: Option<u8>,
    /// We reached it through a relay: outside the LAN, a direct connection to it is a punched
    /// one, even when it comes after the relayed connection closed (the other side may close
    /// it as soon as its own end of the punch is up, before ours arrives). Remembered for
    /// [`RELAYED_MEMORY`] after the last connection closed.
    pub met_via_relay: bool,
    /// When its last connection closed.
    pub apart_since: Option<Instant>,
    /// Our QUIC dial to it (the upgrade from TCP), in flight: its failure only logs. On the
    /// peer, not its connections: the dial may end after every connection closed.
    pub quic_dial: Option<ConnectionId>,
    /// A hole punch to it failed: when to try again, and how many more tries (`paths.rs`).
    pub punch_retry: Option<PunchRetry>,
}

/// The next hole punch to a peer after one failed.
#[derive(Debug, Clone, Copy)]
pub(super) struct PunchRetry {
    pub at: Instant,
    /// Retries started so far.
    pub tried: u8,
}

/// Where we stand with a peer.
#[derive(Debug, Default)]
pub(super) enum Phase {
    /// No connection, and no dial of ours for a `Connect` request.
    #[default]
    Apart,
    /// Our dial for `Connect` requests is in flight; the waiters are answered when a connection
    /// comes up or that dial fails (`connect.rs`).
    Dialling {
        dial: ConnectionId,
        waiters: Vec<Waiter>,
    },
    /// At least one connection is open.
    Connected(Links),
}

/// A better path, of rank `better`, came up at `since`; the worse connections go once the
/// grace has passed and no stream with the peer is open (`paths.rs`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Draining {
    pub better: u8,
    pub since: Instant,
}

/// The connections to a connected peer and what is known of them.
#[derive(Debug, Default)]
pub(super) struct Links {
    pub conns: HashMap<ConnectionId, Conn>,
    /// The last ping round trip.
    pub rtt: Option<Duration>,
    /// A better path is up but worse connections are kept for a while (`paths.rs`).
    pub draining: Option<Draining>,
    /// A LAN peer on TCP: how many more times the tick tries to move it to QUIC (`quic.rs`).
    pub quic_retries: Option<u8>,
}

/// How long a disconnected peer met through a relay is remembered as such: longer than a hole
/// punch takes to land (DCUtR starts its direct dials while the relayed connection is up and
/// gives up on them within seconds).
pub(super) const RELAYED_MEMORY: Duration = Duration::from_secs(60);

impl PeerState {
    /// Nothing left worth keeping at `now`: not connected, not dialled for anyone, not on the
    /// LAN, no punch from a relayed past to expect.
    fn is_idle(&self, now: Instant) -> bool {
        let punch_expected = self.met_via_relay
            && self
                .apart_since
                .is_none_or(|t| now.saturating_duration_since(t) < RELAYED_MEMORY);
        matches!(self.phase, Phase::Apart)
            && self.lan_addrs.is_empty()
            && self.lan_redials.is_none()
            && self.quic_dial.is_none()
            && !punch_expected
    }

    pub fn links(&self) -> Option<&Links> {
        match &self.phase {
            Phase::Connected(links) => Some(links),
            _ => None,
        }
    }

    pub fn links_mut(&mut self) -> Option<&mut Links> {
        match &mut self.phase {
            Phase::Connected(links) => Some(links),
            _ => None,
        }
    }

    /// Whether a connection on `path` (relayed, punched) is open.
    pub fn has_path(&self, wanted: impl Fn(PathKind) -> bool) -> bool {
        self.links()
            .is_some_and(|l| l.conns.values().any(|c| wanted(c.path)))
    }
}

/// Every peer the driver knows of.
#[derive(Debug, Default)]
pub(super) struct Peers(HashMap<PeerId, PeerState>);

impl Peers {
    pub fn get(&self, peer: &PeerId) -> Option<&PeerState> {
        self.0.get(peer)
    }

    pub fn get_mut(&mut self, peer: &PeerId) -> Option<&mut PeerState> {
        self.0.get_mut(peer)
    }

    /// The state of `peer`, made when it is new.
    pub fn entry(&mut self, peer: PeerId) -> &mut PeerState {
        self.0.entry(peer).or_default()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &PeerState)> {
        self.0.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&PeerId, &mut PeerState)> {
        self.0.iter_mut()
    }

    pub fn links(&self, peer: &PeerId) -> Option<&Links> {
        self.get(peer).and_then(PeerState::links)
    }

    pub fn forget_if_idle(&mut self, peer: PeerId) {
        let now = Instant::now();
        if self.0.get(&peer).is_some_and(|s| s.is_idle(now)) {
            self.0.remove(&peer);
        }
    }

    /// Forgets every peer with nothing left at `now` (a relayed past ages out only with time).
    pub fn forget_idle(&mut self, now: Instant) {
        self.0.retain(|_, s| !s.is_idle(now));
    }

    /// A connection came up: `peer` is connected; the waiters of a dial to answer.
    pub fn established(&mut self, peer: PeerId, id: ConnectionId, conn: Conn) -> Vec<Waiter> {
        let state = self.entry(peer);
        state.apart_since = None;
        if state.quic_dial == Some(id) {
            state.quic_dial = None;
        }
        let mut waiters = Vec::new();
        if state.links().is_none() {
            let before = std::mem::replace(&mut state.phase, Phase::Connected(Links::default()));
            if let Phase::Dialling { waiters: w, .. } = before {
                waiters = w;
            }
        }
        if let Some(links) = state.links_mut() {
            links.conns.insert(id, conn);
        }
        waiters
    }

    /// A connection closed; with `remaining` 0 the peer is disconnected and its connection
    /// data goes (all of it, when nothing else is left).
    pub fn closed(&mut self, peer: PeerId, id: ConnectionId, remaining: u32) {
        let Some(state) = self.0.get_mut(&peer) else {
            return;
        };
        if let Some(links) = state.links_mut() {
            links.conns.remove(&id);
        }
        if remaining == 0 && state.links().is_some() {
            state.phase = Phase::Apart;
            state.apart_since = Some(Instant::now());
        }
        self.forget_if_idle(peer);
    }

    /// mDNS says `peer` is no longer at `addr`.
    pub fn expired(&mut self, peer: PeerId, addr: &Multiaddr) {
        if let Some(state) = self.0.get_mut(&peer) {
            state.lan_addrs.retain(|a| a != addr);
        }
        self.forget_if_idle(peer);
    }

    /// Our dial `id` failed: the waiters it was for, when it was a `Connect` dial.
    pub fn dial_failed(&mut self, peer: PeerId, id: ConnectionId) -> Vec<Waiter> {
        let Some(state) = self.0.get_mut(&peer) else {
            return Vec::new();
        };
        let waiters = match &mut state.phase {
            Phase::Dialling { dial, waiters } if *dial == id => std::mem::take(waiters),
            _ => return Vec::new(),
        };
        state.phase = Phase::Apart;
        self.forget_if_idle(peer);
        waiters
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// One tick of a bounded retry: the count of tries left before this one (it goes down by
/// one), or `None` (and the count is dropped) once none are left.
pub(super) fn take_try(left: &mut Option<u8>) -> Option<u8> {
    match *left {
        Some(n) if n > 0 => {
            *left = Some(n - 1);
            Some(n)
        }
        _ => {
            *left = None;
            None
        }
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
