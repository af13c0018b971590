//! DCUtR hole punching, told the addresses peers really see us at, and over QUIC only when QUIC
//! is on.
//!
//! - DCUtR offers the peer the public addresses this node has been seen at. It learns them from
//!   identify's candidates, which identify *translates*: an observed port that is not our listen
//!   port is taken for an ephemeral one and replaced by the listen port. That is wrong for us:
//!   our TCP dials reuse the listen port (libp2p's `PortUse::Reuse`) and QUIC always sends from
//!   the listen socket, so an observed port that differs is the port the NAT gave that socket
//!   because another node of the LAN holds the listen port already (two nodes of one LAN both
//!   use 20006: the second gets another). A Linux NAT keeps that mapping for every destination
//!   while one of its flows lives (it looks up the source's existing mapping first), so the
//!   observed port is where the punch must go; the translated address sent it to the other
//!   node's mapping (seen in the playground: edge-a1 mapped at 203.0.113.1:44176, the punch aimed
//!   at :20006 reached edge-a2, "Unexpected peer ID", and that socket's 4-tuple was the one
//!   edge-a2's own punch needed). So every candidate is taken untranslated from identify
//!   ([`Punch::observed`], fed by the driver), and identify's translated candidates are ignored.
//! - Both sides dial every candidate at once and the first connection wins — TCP as often as
//!   not, and TCP simultaneous open is the fragile kind of punch. With QUIC on, only QUIC
//!   addresses are offered: the punch is UDP and the path it opens is QUIC.

use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol as Ma;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NewExternalAddrCandidate,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, dcutr};

use crate::quic_gate::is_direct_quic;

pub(crate) struct Punch {
    inner: dcutr::Behaviour,
    quic_only: bool,
}

impl Punch {
    pub(crate) fn new(local: PeerId, quic_only: bool) -> Self {
        Punch {
            inner: dcutr::Behaviour::new(local),
            quic_only,
        }
    }

    /// An address a peer saw this node at (identify's `observed_addr`, untranslated): kept if
    /// it is a direct one of a transport we punch over (QUIC; TCP too unless QUIC is on).
    pub(crate) fn observed(&mut self, addr: &Multiaddr) {
        if !punchable(addr, self.quic_only) {
            return;
        }
        self.inner
            .on_swarm_event(FromSwarm::NewExternalAddrCandidate(
                NewExternalAddrCandidate { addr },
            ));
    }
}

/// Whether DCUtR may offer `addr`: a direct (not relayed) QUIC address, or a direct TCP one
/// unless only QUIC is punched.
fn punchable(addr: &Multiaddr, quic_only: bool) -> bool {
    let relayed = addr.iter().any(|p| p == Ma::P2pCircuit);
    let tcp = addr.iter().any(|p| matches!(p, Ma::Tcp(_)));
    let other = addr
        .iter()
        .any(|p| matches!(p, Ma::Ws(_) | Ma::Wss(_) | Ma::Tls | Ma::WebRTCDirect));
    match is_direct_quic(addr) {
        true => true,
        false => !quic_only && tcp && !relayed && !other,
    }
}

impl NetworkBehaviour for Punch {
    type ConnectionHandler = <dcutr::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = dcutr::Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(connection, peer, local, remote)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(connection, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // Identify's (translated) candidates: never; `observed` feeds the untranslated ones.
        if let FromSwarm::NewExternalAddrCandidate(_) = &event {
            return;
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer, connection, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punchable_addresses() {
        let cases = [
            ("/ip4/203.0.113.1/tcp/44176", false, true),
            ("/ip4/203.0.113.1/tcp/44176", true, false),
            ("/ip4/203.0.113.1/udp/44176/quic-v1", false, true),
            ("/ip4/203.0.113.1/udp/44176/quic-v1", true, true),
            ("/ip4/203.0.113.10/tcp/20006/p2p-circuit", false, false),
            ("/ip4/203.0.113.1/tcp/443/ws", false, false),
            ("/ip4/203.0.113.1/udp/20006", false, false),
        ];
        for (addr, quic_only, want) in cases {
            let addr: Multiaddr = addr.parse().unwrap();
            assert_eq!(
                punchable(&addr, quic_only),
                want,
                "{addr} quic_only={quic_only}"
            );
        }
    }
}
