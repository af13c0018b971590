//! Ping (`/ipfs/ping/1.0.0`, libp2p's and go-libp2p's protocol: 32 bytes out, the same 32 back,
//! repeated on one stream) at a pace the driver sets per connection: every [`FAST`] while the
//! peer has tunnel streams open or opening, so that a dead path is seen within seconds
//! (`driver/liveness.rs`), every [`SLOW`] otherwise, so that idle connections cost little.
//! libp2p's ping behaviour has one interval for all connections, and reports a failure only
//! after two in a row.
//!
//! Pings from the peer are answered whatever the pace (Go agents and older agents ping us).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, Stream, StreamUpgradeError, SubstreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, StreamProtocol, ping};

/// Ping interval of a connection whose peer has streams open or opening.
pub(crate) const FAST: Duration = Duration::from_secs(1);
/// Ping interval of an idle connection.
pub(crate) const SLOW: Duration = Duration::from_secs(15);
/// Silence after which a fast-paced connection is declared dead (and the ping timeout); the
/// driver judges connections by it (`driver/liveness.rs`).
pub(crate) const DEAD_AFTER: Duration = Duration::from_secs(3);

const PING_SIZE: usize = 32;

/// How often a connection is pinged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pace {
    Fast,
    Slow,
}

impl Pace {
    fn interval(self) -> Duration {
        match self {
            Pace::Fast => FAST,
            Pace::Slow => SLOW,
        }
    }
}

/// Why a ping failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("no pong within {0:?}")]
    Timeout(Duration),
    #[error("the peer does not speak ping")]
    Unsupported,
    #[error("ping failed: {0}")]
    Other(String),
}

/// The outcome of one ping on one connection.
#[derive(Debug)]
pub(crate) struct Event {
    pub peer: PeerId,
    pub connection: ConnectionId,
    pub result: Result<Duration, Failure>,
}

/// Pings every connection, at the pace the driver sets ([`Keepalive::set_pace`]).
pub(crate) struct Keepalive {
    timeout: Duration,
    queued: VecDeque<ToSwarm<Event, Pace>>,
}

impl Keepalive {
    /// A ping with no pong within `timeout` fails.
    pub(crate) fn new(timeout: Duration) -> Self {
        Keepalive {
            timeout,
            queued: VecDeque::new(),
        }
    }

    /// Pings `connection` at `pace` from now on (at once, when that is faster than before).
    pub(crate) fn set_pace(&mut self, peer: PeerId, connection: ConnectionId, pace: Pace) {
        self.queued.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(connection),
            event: pace,
        });
    }

    fn handler(&self) -> Handler {
        Handler::new(self.timeout)
    }
}

impl NetworkBehaviour for Keepalive {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        result: THandlerOutEvent<Self>,
    ) {
        self.queued.push_back(ToSwarm::GenerateEvent(Event {
            peer,
            connection,
            result,
        }));
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.queued.pop_front() {
            Some(next) => Poll::Ready(next),
            None => Poll::Pending,
        }
    }
}

type PingFuture = BoxFuture<'static, Result<(Stream, Duration), Failure>>;
type PongFuture = BoxFuture<'static, io::Result<Stream>>;

/// Our side of the pings of one connection.
enum Outbound {
    /// No stream: one is asked for when the timer fires.
    None,
    /// A stream has been asked for.
    Opening,
    /// Between two pings.
    Idle(Stream),
    Pinging(PingFuture),
    /// The peer does not speak ping: nothing more is sent.
    Off,
}

/// One connection's pings, both ways.
pub(crate) struct Handler {
    timeout: Duration,
    pace: Pace,
    /// When the next ping is due.
    timer: Pin<Box<tokio::time::Sleep>>,
    outbound: Outbound,
    inbound: Option<PongFuture>,
    results: VecDeque<Result<Duration, Failure>>,
}

impl Handler {
    fn new(timeout: Duration) -> Self {
        Handler {
            timeout,
            // A new connection is usually made for a stream: fast until the driver says idle.
            pace: Pace::Fast,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            outbound: Outbound::None,
            inbound: None,
            results: VecDeque::new(),
        }
    }

    fn next_ping_in(&mut self, after: Duration) {
        let at = tokio::time::Instant::now() + after;
        self.timer.as_mut().reset(at);
    }

    /// Advances our pings; a stream to ask for when one is needed.
    fn poll_outbound(&mut self, cx: &mut Context<'_>) -> Option<SubstreamProtocol<Upgrade, ()>> {
        loop {
            match std::mem::replace(&mut self.outbound, Outbound::None) {
                Outbound::Pinging(mut ping) => match ping.poll_unpin(cx) {
                    Poll::Pending => {
                        self.outbound = Outbound::Pinging(ping);
                        return None;
                    }
                    Poll::Ready(Ok((stream, rtt))) => {
                        self.next_ping_in(self.pace.interval());
                        self.outbound = Outbound::Idle(stream);
                        self.results.push_back(Ok(rtt));
                    }
                    Poll::Ready(Err(failure)) => {
                        self.next_ping_in(retry_in(&failure, self.pace));
                        self.results.push_back(Err(failure));
                    }
                },
                Outbound::Idle(stream) => match self.timer.poll_unpin(cx) {
                    Poll::Pending => {
                        self.outbound = Outbound::Idle(stream);
                        return None;
                    }
                    Poll::Ready(()) => {
                        self.outbound = Outbound::Pinging(send_ping(stream, self.timeout).boxed());
                    }
                },
                Outbound::None => match self.timer.poll_unpin(cx) {
                    Poll::Pending => return None,
                    Poll::Ready(()) => {
                        self.outbound = Outbound::Opening;
                        return Some(SubstreamProtocol::new(upgrade(), ()));
                    }
                },
                other @ (Outbound::Opening | Outbound::Off) => {
                    self.outbound = other;
                    return None;
                }
            }
        }
    }
}

type Upgrade = ReadyUpgrade<StreamProtocol>;

fn upgrade() -> Upgrade {
    ReadyUpgrade::new(ping::PROTOCOL_NAME)
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Pace;
    type ToBehaviour = Result<Duration, Failure>;
    type InboundProtocol = Upgrade;
    type OutboundProtocol = Upgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Upgrade, ()> {
        SubstreamProtocol::new(upgrade(), ())
    }

    fn on_behaviour_event(&mut self, pace: Pace) {
        let faster = pace == Pace::Fast && self.pace == Pace::Slow;
        self.pace = pace;
        if faster {
            self.next_ping_in(Duration::ZERO);
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Upgrade, (), Self::ToBehaviour>> {
        if let Some(result) = self.results.pop_front() {
            // Woken again to hand over the others and go on pinging.
            cx.waker().wake_by_ref();
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(result));
        }
        if let Some(pong) = self.inbound.as_mut() {
            match pong.poll_unpin(cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(stream)) => self.inbound = Some(recv_ping(stream).boxed()),
                Poll::Ready(Err(_)) => self.inbound = None,
            }
        }
        if let Some(protocol) = self.poll_outbound(cx) {
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest { protocol });
        }
        match self.results.pop_front() {
            Some(result) => {
                cx.waker().wake_by_ref();
                Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(result))
            }
            None => Poll::Pending,
        }
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Upgrade, Upgrade>) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: mut stream,
                ..
            }) => {
                stream.ignore_for_keep_alive();
                self.inbound = Some(recv_ping(stream).boxed());
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: mut stream,
                ..
            }) => {
                stream.ignore_for_keep_alive();
                self.outbound = Outbound::Pinging(send_ping(stream, self.timeout).boxed());
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                let failure = match error {
                    StreamUpgradeError::NegotiationFailed => {
                        self.outbound = Outbound::Off;
                        Failure::Unsupported
                    }
                    StreamUpgradeError::Timeout => {
                        self.outbound = Outbound::None;
                        Failure::Other("ping protocol negotiation timed out".into())
                    }
                    StreamUpgradeError::Io(e) => {
                        self.outbound = Outbound::None;
                        Failure::Other(e.to_string())
                    }
                    StreamUpgradeError::Apply(never) => match never {},
                };
                self.next_ping_in(retry_in(&failure, self.pace));
                self.results.push_back(Err(failure));
            }
            _ => {}
        }
    }
}

/// When to ping again after `failure`: a stream that broke (the peer reset it) is replaced
/// soon, so that an idle connection does not go a whole slow interval more without a pong
/// and be taken for dead; after a timeout, the pace's interval.
fn retry_in(failure: &Failure, pace: Pace) -> Duration {
    match failure {
        Failure::Other(_) => FAST,
        Failure::Timeout(_) | Failure::Unsupported => pace.interval(),
    }
}

/// A payload that differs from one ping to the next (an echo of an old one is no answer).
fn payload() -> [u8; PING_SIZE] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; PING_SIZE];
    let count = COUNT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    out[..8].copy_from_slice(&count.to_le_bytes());
    out[8..24].copy_from_slice(&nanos.to_le_bytes());
    out
}

/// One ping on `stream`: the round trip, or why there was none within `timeout`.
async fn send_ping(mut stream: Stream, timeout: Duration) -> Result<(Stream, Duration), Failure> {
    let exchange = async {
        let sent = payload();
        let started = Instant::now();
        stream.write_all(&sent).await?;
        stream.flush().await?;
        let mut back = [0u8; PING_SIZE];
        stream.read_exact(&mut back).await?;
        match back == sent {
            true => Ok(started.elapsed()),
            false => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "pong payload mismatch",
            )),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(rtt)) => Ok((stream, rtt)),
        Ok(Err(e)) => Err(Failure::Other(e.to_string())),
        Err(_) => Err(Failure::Timeout(timeout)),
    }
}

/// Answers one ping on `stream`.
async fn recv_ping(mut stream: Stream) -> io::Result<Stream> {
    let mut payload = [0u8; PING_SIZE];
    stream.read_exact(&mut payload).await?;
    stream.write_all(&payload).await?;
    stream.flush().await?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_ping_stream_is_replaced_soon_even_when_idle() {
        let broken = Failure::Other("stream reset".into());
        assert_eq!(retry_in(&broken, Pace::Slow), FAST);
        assert_eq!(retry_in(&Failure::Timeout(FAST), Pace::Slow), SLOW);
        assert_eq!(retry_in(&Failure::Timeout(FAST), Pace::Fast), FAST);
    }

    #[test]
    fn payloads_differ_from_one_ping_to_the_next() {
        assert_ne!(payload(), payload());
    }
}
