//! The configured relays (`relayNodes`): dialled until connected, asked for a reservation once
//! connected, and replaced without a restart.

use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol as Ma;
use libp2p::{Multiaddr, PeerId};

use super::Driver;
use crate::config::RelayNode;

const RELAY_REDIAL: Duration = Duration::from_secs(3);
/// How long relay dials wait for the TCP listener's first address at most (a node with no
/// usable interface still dials, from an ephemeral port).
const LISTEN_GRACE: Duration = Duration::from_secs(2);

/// Relay dials wait until the TCP listener has reported an outside-facing address. Our TCP dials
/// leave from the listen port (libp2p's port reuse), but only from ports the listener has
/// registered, and a listener on 0.0.0.0 registers them when it reports its interfaces — after
/// the first tick. A relay dialled before that leaves from an ephemeral port: the NAT maps that
/// port, the relay tells us that mapping, and a hole punch aimed at it meets a NAT mapping of the
/// listen port elsewhere (seen in the playground: edge-a1 → cloud from 192.0.2.11:58582, its punch
/// SYNs from :20006 mapped to 46379, edge-b1's punch aimed at :58582).
#[derive(Debug)]
pub(super) struct DialGate {
    since: Instant,
    open: bool,
}

impl DialGate {
    pub(super) fn new(now: Instant) -> Self {
        DialGate {
            since: now,
            open: false,
        }
    }

    /// The listener reported `addr`: a direct, non-loopback TCP address opens the gate.
    pub(super) fn listening(&mut self, addr: &Multiaddr) {
        let mut tcp = false;
        for part in addr.iter() {
            match part {
                Ma::Ip4(ip) if ip.is_loopback() => return,
                Ma::Ip6(ip) if ip.is_loopback() => return,
                Ma::P2pCircuit => return,
                Ma::Tcp(_) => tcp = true,
                _ => {}
            }
        }
        self.open |= tcp;
    }

    pub(super) fn is_open(&self, now: Instant) -> bool {
        self.open || now.saturating_duration_since(self.since) >= LISTEN_GRACE
    }
}

/// A configured relay and our state with it.
#[derive(Debug)]
pub(super) struct RelaySlot {
    pub node: String,
    pub addrs: Vec<Multiaddr>,
    pub peer: Option<PeerId>,
    pub listener: Option<ListenerId>,
    last_dial: Option<Instant>,
}

impl RelaySlot {
    /// The relay's QUIC addresses: its TCP ones on UDP (a relay listens on both).
    fn quic_addrs(&self) -> impl Iterator<Item = Multiaddr> + '_ {
        self.addrs.iter().filter_map(super::quic::tcp_to_quic)
    }
}

impl Driver {
    /// With QUIC on, a QUIC connection to `relay` at `addrs` too, unless it has one: its
    /// identify is how this node learns the address a QUIC punch must aim at, and the NAT
    /// mapping it keeps is the one the punch goes through.
    pub(super) fn dial_relay_over_quic(&mut self, relay: PeerId, addrs: Vec<Multiaddr>) {
        if self.shared.config.quic && !addrs.is_empty() {
            self.dial_quic(relay, addrs);
        }
    }

    /// [`Driver::dial_relay_over_quic`] for every connected relay. Made when a relay is
    /// reached over TCP; redialled after a failed punch (`paths.rs`), since a QUIC connection
    /// that died (pings unanswered) is not otherwise.
    pub(super) fn redial_relays_over_quic(&mut self) {
        let relays: Vec<(PeerId, Vec<Multiaddr>)> = self
            .relays
            .iter()
            .filter_map(|slot| Some((slot.peer?, slot.quic_addrs().collect())))
            .collect();
        for (relay, addrs) in relays {
            self.dial_relay_over_quic(relay, addrs);
        }
    }

    pub(super) fn set_relays(&mut self, relays: Vec<RelayNode>) {
        let port = self.shared.config.relay_port;
        let me = self.shared.me().to_owned();
        let mut slots = Vec::new();
        for relay in relays.into_iter().filter(|r| r.node_name != me) {
            let addrs: Vec<Multiaddr> = relay
                .advertise_addresses
                .iter()
                .map(|ip| Multiaddr::from(*ip).with(Ma::Tcp(port)))
                .collect();
            // Keep the state of relays that stay.
            let kept = self
                .relays
                .iter()
                .position(|s| s.node == relay.node_name && s.addrs == addrs);
            match kept {
                Some(i) => slots.push(self.relays.swap_remove(i)),
                None => slots.push(RelaySlot {
                    node: relay.node_name,
                    addrs,
                    peer: None,
                    listener: None,
                    last_dial: None,
                }),
            }
        }
        for gone in std::mem::replace(&mut self.relays, slots) {
            tracing::info!(relay.node = %gone.node, "relay removed from relayNodes");
            if let Some(listener) = gone.listener {
                self.swarm.remove_listener(listener);
            }
        }
    }

    /// Re-dials relays we are not connected to, and asks for a reservation on those we are.
    pub(super) fn maintain_relays(&mut self) {
        let now = Instant::now();
        let may_dial = self.dial_gate.is_open(now);
        for slot in &mut self.relays {
            match slot.peer {
                None => {
                    let due = may_dial && slot.last_dial.is_none_or(|t| now - t >= RELAY_REDIAL);
                    if due {
                        slot.last_dial = Some(now);
                        for addr in &slot.addrs {
                            if let Err(error) = self.swarm.dial(addr.clone()) {
                                tracing::warn!(relay.node = %slot.node, relay.addr = %addr, %error, "cannot dial relay");
                            }
                        }
                    }
                }
                Some(peer) if slot.listener.is_none() => {
                    let Some(addr) = slot.addrs.first() else {
                        continue;
                    };
                    let circuit = addr.clone().with(Ma::P2p(peer)).with(Ma::P2pCircuit);
                    match self.swarm.listen_on(circuit) {
                        Ok(id) => slot.listener = Some(id),
                        Err(error) => {
                            tracing::warn!(relay.node = %slot.node, %error, "cannot ask relay for a reservation")
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// We dialled `address` and reached `peer`: when that is a relay's address, the relay is
    /// connected; the relay's QUIC addresses when it is one. The address may carry the peer id
    /// (`…/p2p/<id>`, a dial to a relay that mDNS found in the LAN): that connection is as good
    /// as our own relay dial, which would otherwise only follow after `RELAY_REDIAL`.
    pub(super) fn relay_reached(&mut self, peer: PeerId, address: &Multiaddr) -> Vec<Multiaddr> {
        let mut address = address.clone();
        if matches!(address.iter().last(), Some(Ma::P2p(id)) if id == peer) {
            address.pop();
        }
        let mut relay_quic = Vec::new();
        for slot in self
            .relays
            .iter_mut()
            .filter(|s| s.addrs.contains(&address))
        {
            if slot.peer.replace(peer) != Some(peer) {
                tracing::info!(relay.node = %slot.node, peer.id = %peer, "connected to relay");
            }
            self.shared.directory().relays.insert(peer);
            relay_quic.extend(slot.quic_addrs());
        }
        relay_quic
    }

    /// Every connection to `peer` closed: when it was a relay, its reservation went with it.
    pub(super) fn relay_lost(&mut self, peer: PeerId) {
        for slot in self.relays.iter_mut().filter(|s| s.peer == Some(peer)) {
            tracing::warn!(relay.node = %slot.node, "lost the relay; will redial");
            slot.peer = None;
            if let Some(listener) = slot.listener.take() {
                self.swarm.remove_listener(listener);
            }
        }
        self.shared.directory().relays.remove(&peer);
    }

    pub(super) fn on_listener_closed(&mut self, listener: ListenerId, reason: String) {
        for slot in self
            .relays
            .iter_mut()
            .filter(|s| s.listener == Some(listener))
        {
            tracing::warn!(relay.node = %slot.node, %reason, "relay reservation ended");
            slot.listener = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_gate_opens_on_an_outside_tcp_address_or_after_the_grace() {
        let start = Instant::now();
        let cases = [
            ("/ip4/127.0.0.1/tcp/20006", false),
            ("/ip4/192.0.2.11/udp/20006/quic-v1", false),
            ("/ip4/203.0.113.10/tcp/20006/p2p-circuit", false),
            ("/ip4/192.0.2.11/tcp/20006", true),
            ("/ip6/2001:db8::1/tcp/20006", true),
        ];
        for (addr, opens) in cases {
            let mut gate = DialGate::new(start);
            gate.listening(&addr.parse().unwrap());
            assert_eq!(gate.is_open(start), opens, "{addr}");
            assert!(gate.is_open(start + LISTEN_GRACE), "{addr}: grace");
        }
    }
}
