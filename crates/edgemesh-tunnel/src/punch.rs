//! DCUtR hole punching, told the QUIC addresses peers really see us at, and over QUIC only when
//! QUIC is on.
//!
//! - DCUtR offers the peer the public addresses this node has been seen at. It learns them from
//!   identify's candidates, which identify *translates*: an observed port that is not our listen
//!   port is taken for an ephemeral one and replaced by the listen port. Right for our TCP dials
//!   (they leave from ephemeral ports), wrong for QUIC, which always sends from the listen
//!   socket: behind a NAT that gave that socket another port (two nodes of one LAN both use
//!   20006: the second gets another), the translated address sends the punch to the wrong port.
//!   So QUIC candidates are taken untranslated from identify ([`Punch::observed`], fed by the
//!   driver), and identify's translated QUIC candidates are ignored.
//! - Both sides dial every candidate at once and the first connection wins — TCP as often as
//!   not, and TCP simultaneous open is the fragile kind of punch. With QUIC on, only QUIC
//!   addresses are offered: the punch is UDP and the path it opens is QUIC.

use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
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
    /// it is a QUIC one.
    pub(crate) fn observed(&mut self, addr: &Multiaddr) {
        if !is_direct_quic(addr) {
            return;
        }
        self.inner
            .on_swarm_event(FromSwarm::NewExternalAddrCandidate(
                NewExternalAddrCandidate { addr },
            ));
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
        // Identify's candidates: TCP ones unless QUIC is on; never its translated QUIC ones.
        if let FromSwarm::NewExternalAddrCandidate(candidate) = &event
            && (self.quic_only || is_direct_quic(candidate.addr))
        {
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
