//! Inbound tunnel streams, queued for the server instead of dropped.
//!
//! libp2p-stream hands each accepted stream to its receiver over a channel with room for one:
//! a stream negotiated while the previous one waits to be picked up is dropped (reset), and the
//! opening side sees "connection is closed" and retries after 50 ms or more. A burst of opens
//! meets this as soon as the server's task is not scheduled at once: on a 2-core node under load
//! 1,731 of ~11,000 proxy streams were dropped so (`netns_memory_returns_after_load`, which
//! failed when one open lost all its retries). This behaviour accepts the proxy protocol itself
//! and queues each stream in a channel with room for [`QUEUED_STREAMS`]; outbound streams still
//! go through libp2p-stream's `Control`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, Stream, StreamProtocol, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use tokio::sync::mpsc;

/// Streams accepted but not yet picked up by the server. The server only spawns a task per
/// stream, so the queue stays near empty; it absorbs the bursts a busy node's scheduler causes.
pub(crate) const QUEUED_STREAMS: usize = 1024;

/// Accepted streams of one protocol, with the remote peer.
pub(crate) type Incoming = mpsc::Receiver<(PeerId, Stream)>;

/// The behaviour accepting `protocol` on every connection.
#[derive(Debug)]
pub(crate) struct Inbound {
    protocol: StreamProtocol,
    queue: mpsc::Sender<(PeerId, Stream)>,
    dropped: Arc<AtomicU64>,
}

impl Inbound {
    /// The behaviour and the receiving end of its queue.
    pub(crate) fn new(protocol: StreamProtocol) -> (Self, Incoming) {
        let (queue, incoming) = mpsc::channel(QUEUED_STREAMS);
        let inbound = Self {
            protocol,
            queue,
            dropped: Arc::default(),
        };
        (inbound, incoming)
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            protocol: self.protocol.clone(),
            queue: self.queue.clone(),
            dropped: Arc::clone(&self.dropped),
        }
    }
}

impl NetworkBehaviour for Inbound {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        never: THandlerOutEvent<Self>,
    ) {
        match never {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// One connection's side: listens for the protocol, opens nothing.
#[derive(Debug)]
pub(crate) struct Handler {
    peer: PeerId,
    protocol: StreamProtocol,
    queue: mpsc::Sender<(PeerId, Stream)>,
    dropped: Arc<AtomicU64>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(self.protocol.clone()), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Infallible, Self::ToBehaviour>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, never: Self::FromBehaviour) {
        match never {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), Infallible>,
    ) {
        let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: stream,
            ..
        }) = event
        else {
            return;
        };
        if self.queue.try_send((self.peer, stream)).is_err() {
            // Full (the server stalled for over a thousand streams) or gone (stopping): the
            // stream is reset and its opener retries.
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(peer.id = %self.peer, protocol = %self.protocol, dropped, "inbound stream queue full: stream dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
    use libp2p::core::Transport as _;
    use libp2p::core::transport::MemoryTransport;
    use libp2p::core::upgrade::Version;
    use libp2p::swarm::{NetworkBehaviour, Swarm};
    use libp2p::{Multiaddr, noise, yamux};

    use super::*;

    const PROTOCOL: StreamProtocol = StreamProtocol::new("/test/inbound/1.0.0");
    const BURST: usize = 200;

    #[derive(NetworkBehaviour)]
    struct Node {
        inbound: Inbound,
        stream: libp2p_stream::Behaviour,
    }

    fn node() -> (Swarm<Node>, Incoming) {
        let (inbound, incoming) = Inbound::new(PROTOCOL);
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(|key| {
                let noise = noise::Config::new(key)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
                Ok(MemoryTransport::default()
                    .upgrade(Version::V1)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .boxed())
            })
            .expect("memory transport")
            .with_behaviour(|_| Node {
                inbound,
                stream: libp2p_stream::Behaviour::new(),
            })
            .expect("behaviour")
            .build();
        (swarm, incoming)
    }

    #[tokio::test]
    async fn a_burst_of_streams_waits_for_a_busy_server_instead_of_being_dropped() {
        let (mut server, mut incoming) = node();
        // Memory transport ports are process-wide: one of this test alone.
        let address: Multiaddr = "/memory/7202001".parse().expect("memory address");
        server.listen_on(address.clone()).expect("listen");
        let server_id = *server.local_peer_id();
        let (mut client, _) = node();
        let mut control = client.behaviour().stream.new_control();
        tokio::spawn(async move {
            loop {
                server.select_next_some().await;
            }
        });
        client.dial(address).expect("dial");
        tokio::time::timeout(Duration::from_secs(10), async {
            while !client.is_connected(&server_id) {
                client.select_next_some().await;
            }
        })
        .await
        .expect("connected");
        tokio::spawn(async move {
            loop {
                client.select_next_some().await;
            }
        });

        // The server's task is busy elsewhere while the whole burst is negotiated: nothing
        // takes streams off the queue until every open has completed.
        let mut opened = Vec::new();
        for i in 0..BURST {
            let stream = tokio::time::timeout(
                Duration::from_secs(10),
                control.open_stream(server_id, PROTOCOL),
            )
            .await
            .unwrap_or_else(|_| panic!("open {i} timed out"))
            .unwrap_or_else(|e| panic!("open {i}: {e}"));
            opened.push(stream);
        }
        for i in 0..BURST {
            let (_, mut stream) = tokio::time::timeout(Duration::from_secs(10), incoming.recv())
                .await
                .unwrap_or_else(|_| panic!("only {i} of {BURST} streams reached the server"))
                .expect("queue open");
            stream.write_all(&[1]).await.expect("server write");
            stream.flush().await.expect("server flush");
        }
        for (i, stream) in opened.iter_mut().enumerate() {
            let mut byte = [0u8; 1];
            tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut byte))
                .await
                .unwrap_or_else(|_| panic!("stream {i}: no byte"))
                .unwrap_or_else(|e| panic!("stream {i} was dropped by the server: {e}"));
        }
    }
}
