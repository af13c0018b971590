//! QUIC admits only peers that have proven their membership over TCP.
//!
//! libp2p's QUIC authenticates with its own TLS 1.3 handshake, which neither pnet nor a noise
//! prologue can enter: on its own it would admit any host that reaches the UDP port. So a QUIC
//! connection is kept only with a peer that this node has already met over a connection that
//! did carry the PSK (TCP, or a relayed circuit: both run noise with the PSK). The peer id of a
//! QUIC connection is proven by TLS (the certificate is signed with the peer's key), so a
//! non-member cannot borrow a member's id without its private key.
//!
//! A peer stays proven until this process stops: a member whose TCP connection closed may come
//! back over QUIC alone (after a hole punch, say). Only for `psk.mode: noise`, where every key is
//! random and private; EdgeMesh's Go agents (pnet mode) derive their keys from node names.

use std::collections::HashSet;
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol as Ma;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Log text of a refused QUIC connection: tests look for it.
pub const NOT_PROVEN: &str = "QUIC from a peer that has not proven its membership over TCP";

#[derive(Debug, Default)]
pub(crate) struct QuicGate {
    proven: HashSet<PeerId>,
}

#[derive(Debug, thiserror::Error)]
#[error("{NOT_PROVEN} ({peer})")]
struct NotProven {
    peer: PeerId,
}

impl QuicGate {
    pub(crate) fn is_proven(&self, peer: &PeerId) -> bool {
        self.proven.contains(peer)
    }

    /// A connection that carried the PSK proves its peer; a QUIC one needs that proof.
    fn admit(&mut self, peer: PeerId, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        if !is_direct_quic(remote) {
            self.proven.insert(peer);
            return Ok(());
        }
        if self.proven.contains(&peer) {
            return Ok(());
        }
        tracing::warn!(peer.id = %peer, peer.addr = %remote, reason = NOT_PROVEN, "refused a QUIC connection");
        Err(ConnectionDenied::new(NotProven { peer }))
    }
}

/// A QUIC connection of our own (a relayed circuit over QUIC runs noise with the PSK inside).
pub(crate) fn is_direct_quic(addr: &Multiaddr) -> bool {
    let mut quic = false;
    for part in addr.iter() {
        match part {
            Ma::P2pCircuit => return false,
            Ma::QuicV1 | Ma::Quic => quic = true,
            _ => {}
        }
    }
    quic
}

impl NetworkBehaviour for QuicGate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _connection: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(peer, remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        peer: PeerId,
        remote: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(peer, remote)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _event: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("test address")
    }

    #[test]
    fn quic_is_refused_until_the_peer_came_over_a_psk_connection() {
        let mut gate = QuicGate::default();
        let peer = PeerId::random();
        let quic = addr("/ip4/192.0.2.11/udp/20006/quic-v1");
        assert!(gate.admit(peer, &quic).is_err());
        assert!(!gate.is_proven(&peer));
        gate.admit(peer, &addr("/ip4/192.0.2.11/tcp/20006"))
            .expect("TCP is admitted");
        assert!(gate.admit(peer, &quic).is_ok());
        assert!(gate.admit(PeerId::random(), &quic).is_err(), "another peer");
    }

    #[test]
    fn a_relayed_circuit_proves_even_over_a_quic_hop() {
        let mut gate = QuicGate::default();
        let peer = PeerId::random();
        let circuit = addr(
            "/ip4/203.0.113.10/udp/20006/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        );
        assert!(!is_direct_quic(&circuit));
        gate.admit(peer, &circuit).expect("circuits carry the PSK");
        assert!(gate.is_proven(&peer));
    }
}
