//! The `Connect` command, from request to answer (the client waits on it before it opens a
//! stream, `client.rs`):
//!
//! 1. [`Driver::connect`]: a connected peer is answered at once; otherwise the request waits in
//!    [`Phase::Dialling`] with the dial made for it (to the peer's LAN addresses when mDNS found
//!    it, else through circuits of the relays we hold), or with the dial already in flight.
//! 2. The dial ends: a connection to the peer comes up (any, also an inbound one: `mod.rs`
//!    `on_established` answers `Ok`), or our dial fails ([`Driver::on_dial_error`] answers
//!    with the [`ConnectFailure`]).

use std::sync::Arc;

use libp2p::multiaddr::Protocol as Ma;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::{Multiaddr, PeerId};

use super::Driver;
use super::peer::Phase;
use crate::command::Waiter;
use crate::error::ConnectFailure;

/// Sends `result` to every waiter (a waiter that gave up is no error).
pub(super) fn answer(waiters: Vec<Waiter>, result: &Result<(), ConnectFailure>) {
    for waiter in waiters {
        let _ = waiter.send(result.clone());
    }
}

impl Driver {
    /// Answers at once when `peer` is connected; otherwise waits for a dial (see the module).
    pub(super) fn connect(&mut self, peer: PeerId, reply: Waiter) {
        match self.peers.get_mut(&peer).map(|s| &mut s.phase) {
            Some(Phase::Connected(_)) => {
                let _ = reply.send(Ok(()));
                return;
            }
            // Our dial for an earlier request is in flight.
            Some(Phase::Dialling { waiters, .. }) => return waiters.push(reply),
            Some(Phase::Apart) | None => {}
        }
        let lan = self.lan_dial_addrs(peer);
        let addrs = match lan.is_empty() {
            false => lan,
            true => self.circuit_addrs(peer),
        };
        if addrs.is_empty() {
            let _ = reply.send(Err(ConnectFailure::NoPath));
            return;
        }
        // Not `NotDialing`: a hole punch attempt to this peer may be in flight, and under a NAT
        // that drops its SYNs it only fails after the dial timeout; the relay must not wait.
        match self.dial(peer, addrs, PeerCondition::Disconnected) {
            Ok(dial) => {
                self.peers.entry(peer).phase = Phase::Dialling {
                    dial,
                    waiters: vec![reply],
                };
            }
            Err(error) => {
                tracing::debug!(peer.id = %peer, %error, "dial not started");
                let result = match self.swarm.is_connected(&peer) {
                    true => Ok(()),
                    false => Err(ConnectFailure::Dial(Arc::new(error))),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// A dial failed: logged, and answered when it was our dial for `Connect` requests (a
    /// failed hole punch or relay dial to the same peer says nothing about the path being
    /// dialled for them).
    pub(super) fn on_dial_error(
        &mut self,
        peer: Option<PeerId>,
        id: ConnectionId,
        error: DialError,
    ) {
        let text = error.to_string();
        let hint = handshake_hint(&text);
        if hint.is_some() {
            self.count_handshake_failure();
        }
        tracing::warn!(peer.id = ?peer, error = %text, hint, "connection attempt failed");
        let Some(peer) = peer else { return };
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.quic_dial == Some(id) {
            state.quic_dial = None;
            tracing::warn!(peer.id = %peer, error = %text, "QUIC upgrade failed (UDP filtered?): staying on TCP");
        }
        let waiters = self.peers.dial_failed(peer, id);
        answer(waiters, &Err(ConnectFailure::Dial(Arc::new(error))));
    }

    pub(super) fn count_handshake_failure(&self) {
        self.shared
            .handshake_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Dials `peer` at `addrs`; the id of the connection being dialled, to follow its outcome.
    pub(super) fn dial(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        condition: PeerCondition,
    ) -> Result<ConnectionId, DialError> {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(condition)
            .build();
        let id = opts.connection_id();
        self.swarm.dial(opts).map(|()| id)
    }

    /// `peer` through each relay we are connected to. A circuit out needs only our connection
    /// to the relay (the reservation is the callee's); waiting for our own reservation too made
    /// the first requests in the second after start-up fail with `NoPath`.
    pub(super) fn circuit_addrs(&self, peer: PeerId) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        for slot in &self.relays {
            let Some(relay) = slot.peer else { continue };
            for addr in &slot.addrs {
                out.push(
                    addr.clone()
                        .with(Ma::P2p(relay))
                        .with(Ma::P2pCircuit)
                        .with(Ma::P2p(peer)),
                );
            }
        }
        out
    }
}

/// What a failed transport handshake most likely means, for the log: the PSK layer is the only
/// part of the handshake two honest members can disagree on.
pub(super) fn handshake_hint(error: &str) -> Option<&'static str> {
    error.contains("Handshake failed").then_some(
        "handshake failed: the other side holds another PSK, or applies it another way \
         (modules.edgeTunnel.psk.mode: noise or pnet, which must be the same on every node)",
    )
}
