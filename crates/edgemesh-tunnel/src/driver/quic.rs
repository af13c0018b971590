//! Moving peers to QUIC once they have proven their membership over TCP (`transport: quic`,
//! see `quic_gate.rs`): LAN peers are dialled at their QUIC addresses; punched paths get QUIC
//! from DCUtR itself (`punch.rs`).

use libp2p::multiaddr::Protocol as Ma;
use libp2p::swarm::dial_opts::PeerCondition;
use libp2p::{Multiaddr, PeerId};

use super::Driver;
use super::peer::take_try;
use crate::quic_gate::is_direct_quic;
use crate::stats::TransportKind;

/// Further attempts (one per second) to move a LAN peer from TCP to QUIC.
pub(super) const QUIC_RETRIES: u8 = 10;

/// Of those, how many are left to the side with the lower peer id alone.
const LEADER_ONLY_TRIES: u8 = 3;

impl Driver {
    /// Tries the QUIC upgrade again for LAN peers still on TCP (mDNS may not have announced
    /// their QUIC address yet, or the first dial raced the peer's view of our TCP connection),
    /// a bounded number of times ([`QUIC_RETRIES`]).
    pub(super) fn retry_quic_upgrades(&mut self) {
        // Only connected peers hold tries: they go with the connection.
        let due: Vec<(PeerId, u8)> = self
            .peers
            .iter_mut()
            .filter_map(|(peer, s)| {
                let links = s.links_mut()?;
                take_try(&mut links.quic_retries).map(|left| (*peer, left))
            })
            .collect();
        for (peer, left) in due {
            // After a few tries by the side that leads, the other side tries too: the leader may
            // not know our QUIC address (mDNS answers a newcomer's query at once, but the
            // newcomer is only heard of at the others' next query, seconds to minutes later).
            let leader_only = QUIC_RETRIES - left < LEADER_ONLY_TRIES;
            self.upgrade_to_quic(peer, leader_only);
        }
    }

    /// A LAN peer reached over TCP has proven its membership: move to QUIC if it listens on it.
    /// With `leader_only`, only the side with the lower peer id dials, so that the two do not
    /// open two connections.
    pub(super) fn upgrade_to_quic(&mut self, peer: PeerId, leader_only: bool) {
        let leader = *self.swarm.local_peer_id() < peer;
        if !self.shared.config.quic || (leader_only && !leader) {
            return;
        }
        let quic: Vec<Multiaddr> = self
            .peers
            .get(&peer)
            .into_iter()
            .flat_map(|s| &s.lan_addrs)
            .filter(|a| is_direct_quic(a))
            .cloned()
            .collect();
        if !quic.is_empty() {
            self.dial_quic(peer, quic);
        }
    }

    /// Dials a peer already met over TCP at its QUIC addresses, unless a QUIC connection to it
    /// exists or is being dialled.
    pub(super) fn dial_quic(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let busy = self.peers.get(&peer).is_some_and(|s| {
            s.quic_dial.is_some()
                || s.links().is_some_and(|l| {
                    l.conns
                        .values()
                        .any(|c| c.transport() == TransportKind::Quic)
                })
        });
        if busy {
            return;
        }
        match self.dial(peer, addrs, PeerCondition::Always) {
            Ok(id) => self.peers.entry(peer).quic_dial = Some(id),
            Err(error) => tracing::debug!(peer.id = %peer, %error, "QUIC dial not started"),
        }
    }

    /// The LAN addresses to dial `peer` at: QUIC ones only once the peer has proven its
    /// membership over TCP ([`crate::quic_gate`]).
    pub(super) fn lan_dial_addrs(&self, peer: PeerId) -> Vec<Multiaddr> {
        let quic_ok = self.shared.config.quic && self.swarm.behaviour().quic_gate.is_proven(&peer);
        self.peers
            .get(&peer)
            .into_iter()
            .flat_map(|s| &s.lan_addrs)
            .filter(|a| quic_ok || !is_direct_quic(a))
            .cloned()
            .collect()
    }
}

/// `/ip4/x/tcp/p` → `/ip4/x/udp/p/quic-v1`: a peer listens on the same port for both.
pub(super) fn tcp_to_quic(addr: &Multiaddr) -> Option<Multiaddr> {
    let mut out = Multiaddr::empty();
    let mut had_tcp = false;
    for part in addr.iter() {
        match part {
            Ma::Tcp(port) => {
                had_tcp = true;
                out.push(Ma::Udp(port));
                out.push(Ma::QuicV1);
            }
            other => out.push(other),
        }
    }
    had_tcp.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn relay_quic_address_is_its_tcp_address_on_udp() {
        let tcp: Multiaddr = "/ip4/203.0.113.10/tcp/20006".parse().expect("address");
        let quic = tcp_to_quic(&tcp).expect("has TCP");
        assert_eq!(quic.to_string(), "/ip4/203.0.113.10/udp/20006/quic-v1");
        let circuit: Multiaddr = "/p2p-circuit".parse().expect("address");
        assert_eq!(tcp_to_quic(&circuit), None);
    }
}
