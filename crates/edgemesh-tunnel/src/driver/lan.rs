//! Peers of this LAN, found by mDNS: dialled at once (the discovery handshake then learns their
//! names), and redialled a few times when the first dial fails.

use libp2p::swarm::dial_opts::PeerCondition;
use libp2p::{Multiaddr, PeerId};

use super::Driver;
use super::peer::take_try;
use crate::stats::PathKind;

/// Redials (one per second) of a LAN peer whose first dial failed. Two nodes that find each other
/// by mDNS at the same moment dial each other from their listen ports at once: TCP makes one
/// connection of the two, both sides start noise as its initiator, and the handshake fails.
const LAN_REDIALS: u8 = 5;

impl Driver {
    pub(super) fn on_mdns(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        for (peer, addr) in found {
            if peer == *self.swarm.local_peer_id() {
                continue;
            }
            let addrs = &mut self.peers.entry(peer).lan_addrs;
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        // Connect to LAN peers right away: the discovery handshake then learns their names.
        let lan_peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| !s.lan_addrs.is_empty())
            .map(|(peer, _)| *peer)
            .collect();
        for peer in lan_peers {
            if self.dial_lan_peer(peer) {
                self.peers
                    .entry(peer)
                    .lan_redials
                    .get_or_insert(LAN_REDIALS);
            }
        }
    }

    /// Dials a LAN peer at its mDNS addresses unless it is connected directly; whether it dialled.
    pub(super) fn dial_lan_peer(&mut self, peer: PeerId) -> bool {
        let connected_directly = self
            .peers
            .get(&peer)
            .is_some_and(|s| s.has_path(|p| p != PathKind::Relayed));
        let addrs = self.lan_dial_addrs(peer);
        if connected_directly || addrs.is_empty() {
            return false;
        }
        let _ = self.dial(peer, addrs, PeerCondition::NotDialing);
        true
    }

    /// Gives LAN peers that are still not connected directly another dial, a bounded number of
    /// times ([`LAN_REDIALS`]).
    pub(super) fn redial_lan_peers(&mut self) {
        let mut due = Vec::new();
        let mut done = Vec::new();
        for (peer, state) in self.peers.iter_mut() {
            match (state.lan_redials, take_try(&mut state.lan_redials)) {
                (None, _) => {}
                (Some(_), Some(_)) => due.push(*peer),
                (Some(_), None) => done.push(*peer),
            }
        }
        for peer in due {
            if !self.dial_lan_peer(peer) {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.lan_redials = None;
                }
                done.push(peer);
            }
        }
        for peer in done {
            self.peers.forget_if_idle(peer);
        }
    }
}
