//! Peers of this LAN, found by mDNS: dialled at once (the discovery handshake then learns their
//! names), and redialled a few times when the first dial fails.

use libp2p::swarm::dial_opts::PeerCondition;
use libp2p::{Multiaddr, PeerId};

use super::{Driver, next_tries};
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
            let addrs = self.lan_addrs.entry(peer).or_default();
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        // Connect to LAN peers right away: the discovery handshake then learns their names.
        let peers: Vec<PeerId> = self.lan_addrs.keys().copied().collect();
        for peer in peers {
            if self.dial_lan_peer(peer) {
                self.lan_redials.entry(peer).or_insert(LAN_REDIALS);
            }
        }
    }

    /// Dials a LAN peer at its mDNS addresses unless it is connected directly; whether it dialled.
    pub(super) fn dial_lan_peer(&mut self, peer: PeerId) -> bool {
        let connected_directly = self
            .conns
            .get(&peer)
            .is_some_and(|c| c.values().any(|c| c.path != PathKind::Relayed));
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
        for (peer, _) in next_tries(&mut self.lan_redials) {
            if !self.dial_lan_peer(peer) {
                self.lan_redials.remove(&peer);
            }
        }
    }
}
