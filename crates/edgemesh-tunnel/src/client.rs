//! The local side: find node X's agent, open a stream, send CONNECT, wait for the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{PeerId, Stream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _};

use crate::behaviour::MAX_STREAMS_PER_CONNECTION;
use crate::command::Command;
use crate::discovery;
use crate::error::{ConnectFailure, TunnelError};
use crate::policy::WireProtocol;
use crate::shared::{STREAMS_PER_PEER, Shared};
use crate::slots::SlotPressure;
use crate::stats::{Counted, Opening};
use crate::wire::{self, MsgType, PROXY_PROTOCOL, Proxy};

/// A byte stream to an endpoint on another node, through the tunnel.
pub type TunnelStream = Counted<Compat<Stream>>;

const VERIFY_WAIT: Duration = Duration::from_secs(5);

// Both sides of one peer connection stay under the muxer's limit (see [`STREAMS_PER_PEER`]).
const _: () = assert!(2 * STREAMS_PER_PEER + 64 <= MAX_STREAMS_PER_CONNECTION);

/// How long a new stream waits for one of its peer's [`STREAMS_PER_PEER`] slots (or, then, for
/// an [`crate::shared::OPENING_PER_PEER`] slot) before it fails ([`TunnelError::Busy`]).
const SLOT_WAIT: Duration = Duration::from_secs(60);

/// How long an open may spend on its own work: finding and reaching the peer, opening the
/// stream, the remote agent's dial (and the pauses between retries). The waits for a slot
/// ([`take_slot`]) are queueing, bounded by [`SLOT_WAIT`] and not counted: a burst of opens to
/// one peer waits its turn (back-pressure) instead of failing because others were ahead of it.
/// The proxy's connect timeout over the whole open made queueing count as failure (issue #17:
/// of 5,000 new UDP flows at once to one peer, 766–4,243 failed "did not open in time").
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    within: Option<Duration>,
    left: Duration,
}

impl Budget {
    /// `None`: no bound but the tunnel's own per phase (dial, verification, stream open, answer).
    pub(crate) fn new(within: Option<Duration>) -> Self {
        Budget {
            within,
            left: within.unwrap_or(Duration::MAX),
        }
    }

    /// Runs `work` within what is left, and takes the time it took off what is left.
    async fn spend<T>(
        &mut self,
        node: &str,
        work: impl Future<Output = Result<T, TunnelError>>,
    ) -> Result<T, TunnelError> {
        let Some(within) = self.within else {
            return work.await;
        };
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(self.left, work).await;
        self.left = self.left.saturating_sub(started.elapsed());
        result.unwrap_or_else(|_| {
            Err(TunnelError::OpenTimedOut {
                node: node.to_owned(),
                within,
            })
        })
    }
}

/// Opens a stream to `node`'s agent and has it dial `target` over `protocol`; the open's work is
/// bounded by `budget`, its waits for slots by [`SLOT_WAIT`].
pub(crate) async fn open(
    shared: &Arc<Shared>,
    node: &str,
    protocol: WireProtocol,
    target: SocketAddr,
    budget: &mut Budget,
) -> Result<TunnelStream, TunnelError> {
    let mut peer = budget.spend(node, resolve(shared, node)).await?;
    let mut attempt = 1;
    loop {
        // Connect on every attempt: if the connection died, our driver redials over the paths
        // it knows (LAN, or circuits through the relays we hold). Left to itself, the stream
        // layer would dial every address it ever heard of, such as the peer's NAT address,
        // and wait out a TCP timeout there.
        peer = budget
            .spend(node, connect_current(shared, node, peer))
            .await?;
        let slots = shared.stream_slots(peer);
        let slot = take_slot(&slots.open, Some(&slots.pressure), node, peer).await?;
        let opening = Opening::new(shared.counters(peer));
        let opening_slot = take_slot(&slots.opening, None, node, peer).await?;
        let opened = open_and_handshake(shared, opening_slot, node, peer, protocol, target);
        match budget.spend(node, opened).await {
            Ok(stream) => {
                let stream = Counted::new(stream.compat(), shared.counters(peer))
                    .holding(slot, Arc::clone(&slots.pressure));
                drop(opening);
                return Ok(stream);
            }
            // Two nodes that dial each other at once (mDNS on both sides) briefly hold two
            // connections and one is closed, as is a relayed one once a punch succeeds; a stream
            // opened on it dies, or waits, before its answer. Nothing was sent past CONNECT, so
            // another try (on a connection picked anew) is safe.
            Err(e @ (TunnelError::Protocol { .. } | TunnelError::OpenStream { .. }))
                if attempt < OPEN_ATTEMPTS =>
            {
                tracing::debug!(node, error = %e, "tunnel stream lost while opening; retrying");
                attempt += 1;
                // Doubling: 50, 100, 200, 400 ms. libp2p-stream picks one of the peer's
                // connections at random, and keeps a closing one on its list until it is gone;
                // 4 quick tries in a row could all land on it (1 of 5,000 connections at once
                // failed so, "connection is closed", at 50 ms each).
                let pause = RETRY_PAUSE * 2u32.pow(attempt - 2);
                budget
                    .spend(node, async {
                        tokio::time::sleep(pause).await;
                        Ok(())
                    })
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One of `peer`'s `slots`, waiting (bounded) for one to be freed when all are taken; the wait
/// is counted in `pressure`, if given, so idle UDP flows make room.
async fn take_slot(
    slots: &Arc<Semaphore>,
    pressure: Option<&SlotPressure>,
    node: &str,
    peer: PeerId,
) -> Result<OwnedSemaphorePermit, TunnelError> {
    if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
        return Ok(slot);
    }
    tracing::debug!(node, peer.id = %peer, "all stream slots to the peer taken; waiting for one");
    let _waiting = pressure.map(SlotPressure::wait);
    match tokio::time::timeout(SLOT_WAIT, Arc::clone(slots).acquire_owned()).await {
        Ok(Ok(slot)) => Ok(slot),
        // The semaphores are never closed.
        Ok(Err(_)) => Err(TunnelError::Stopped),
        Err(_) => Err(TunnelError::Busy {
            node: node.to_owned(),
            open: STREAMS_PER_PEER,
            waited: SLOT_WAIT,
        }),
    }
}

/// Attempts at opening a stream whose connection closed (or was closing) under it.
const OPEN_ATTEMPTS: u32 = 5;
/// The pause before the first retry; it doubles with each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Opening a stream on a live connection takes one round trip. The stream layer puts a stream on
/// a connection to the peer picked at random, also on one that is closing (the relayed
/// connection after a punch, one whose relay died), where the request can wait for seconds
/// until that connection is gone: give up early and pick again.
const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(1);

/// Opens the stream (holding `opening_slot` meanwhile) and sends CONNECT.
async fn open_and_handshake(
    shared: &Arc<Shared>,
    opening_slot: OwnedSemaphorePermit,
    node: &str,
    peer: PeerId,
    protocol: WireProtocol,
    target: SocketAddr,
) -> Result<Stream, TunnelError> {
    let open_failed = |reason: String| TunnelError::OpenStream {
        node: node.to_owned(),
        reason,
    };
    let mut control = shared.control();
    let opening = control.open_stream(peer, PROXY_PROTOCOL);
    let mut stream = tokio::time::timeout(STREAM_OPEN_TIMEOUT, opening)
        .await
        .map_err(|_| open_failed(format!("no stream within {STREAM_OPEN_TIMEOUT:?}")))?
        .map_err(|e| open_failed(e.to_string()))?;
    drop(opening_slot);
    // The remote agent answers once it has dialled the target, which it gives `dial_timeout`.
    let answer_within = shared.config.dial_timeout + STREAM_OPEN_TIMEOUT;
    let handshaking = handshake(&mut stream, shared.me(), node, protocol, target);
    tokio::time::timeout(answer_within, handshaking)
        .await
        .map_err(|_| TunnelError::Protocol {
            node: node.to_owned(),
            reason: format!("no answer to CONNECT within {answer_within:?}"),
        })??;
    Ok(stream)
}

async fn handshake(
    stream: &mut Stream,
    me: &str,
    node: &str,
    protocol: WireProtocol,
    target: SocketAddr,
) -> Result<(), TunnelError> {
    let proto_err = |e: std::io::Error| TunnelError::Protocol {
        node: node.to_owned(),
        reason: e.to_string(),
    };
    let connect = Proxy {
        r#type: Some(MsgType::Connect as i32),
        protocol: Some(protocol.as_str().to_owned()),
        // EdgeMesh sends the *destination* node name here.
        node_name: Some(node.to_owned()),
        ip: Some(target.ip().to_string()),
        port: Some(i32::from(target.port())),
        reason: None,
    };
    let _ = me;
    wire::write_msg(stream, &connect).await.map_err(proto_err)?;
    let answer: Proxy = wire::read_msg(stream).await.map_err(proto_err)?;
    match answer.kind() {
        Some(MsgType::Success) => Ok(()),
        _ => Err(TunnelError::Refused {
            node: node.to_owned(),
            target: format!("{} {target}", protocol.as_str()),
            reason: answer.reason.unwrap_or_else(|| NO_REASON.to_owned()),
        }),
    }
}

/// A FAILED answer without a reason comes from an EdgeMesh Go agent, which refuses both a
/// destination that is not its endpoint and one whose dial failed.
const NO_REASON: &str = "refused, reason not given (an EdgeMesh Go agent): not a ready endpoint \
                         on that node, or its dial failed";

/// The peer of `node`: known (verified or bound), else asked of each connected relay.
async fn resolve(shared: &Arc<Shared>, node: &str) -> Result<PeerId, TunnelError> {
    if let Some(peer) = shared.peer_of(node) {
        return Ok(peer);
    }
    ask_relays(shared, node)
        .await
        .ok_or_else(|| TunnelError::UnknownNode(node.to_owned()))
}

/// Which peer each connected relay says is `node` (the first answer).
async fn ask_relays(shared: &Shared, node: &str) -> Option<PeerId> {
    let (reply, relays) = oneshot::channel();
    shared.send(Command::Relays { reply }).await.ok()?;
    for relay in relays.await.ok()? {
        if let Some(peer) = discovery::lookup(shared, relay, node).await {
            tracing::debug!(%node, peer.id = %peer, relay.id = %relay, "relay told us who the node is");
            return Some(peer);
        }
    }
    None
}

/// Connects to `peer` as `node`; when that fails, the key we know may be stale (the node
/// restarted with a new one and proves it with its certificate): the peer the relays now know
/// as `node` is tried instead. The peer connected to.
async fn connect_current(
    shared: &Arc<Shared>,
    node: &str,
    peer: PeerId,
) -> Result<PeerId, TunnelError> {
    let error = match connect_verified(shared, node, peer).await {
        Ok(()) => return Ok(peer),
        Err(error) => error,
    };
    let fresh = shared.live_peer_of(node).filter(|p| *p != peer);
    let fresh = match fresh {
        Some(p) => Some(p),
        None => ask_relays(shared, node).await.filter(|p| *p != peer),
    };
    let Some(fresh) = fresh else {
        return Err(error);
    };
    tracing::info!(%node, peer.id = %peer, peer.new_id = %fresh, "the node's known key is unreachable; trying the key it now has");
    connect_verified(shared, node, fresh).await.map(|()| fresh)
}

async fn connect(shared: &Shared, node: &str, peer: PeerId) -> Result<(), TunnelError> {
    let (reply, answer) = oneshot::channel();
    shared.send(Command::Connect { peer, reply }).await?;
    let reason = match tokio::time::timeout(shared.config.dial_timeout * 2, answer).await {
        Ok(Ok(Ok(()))) => return Ok(()),
        Ok(Ok(Err(reason))) => reason,
        Ok(Err(_)) => return Err(TunnelError::Stopped),
        Err(_) => ConnectFailure::TimedOut,
    };
    Err(connect_failed(node, peer, reason))
}

fn connect_failed(node: &str, peer: PeerId, reason: ConnectFailure) -> TunnelError {
    TunnelError::Connect {
        node: node.to_owned(),
        peer: peer.to_string(),
        reason,
    }
}

/// Connects and waits (bounded by [`VERIFY_WAIT`]) until the peer has proved, by the discovery
/// handshake, that it is `node`: a lookup answer alone is never trusted. The proof belongs to a
/// connection: when that connection dies during the wait (its relay was killed), connect again
/// instead of waiting for a proof that cannot come.
async fn connect_verified(
    shared: &Arc<Shared>,
    node: &str,
    peer: PeerId,
) -> Result<(), TunnelError> {
    let deadline = tokio::time::Instant::now() + VERIFY_WAIT;
    let mut steps = 0;
    loop {
        connect(shared, node, peer).await?;
        let step_end = deadline.min(tokio::time::Instant::now() + VERIFY_STEP);
        if proved_by(shared, node, peer, step_end).await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(connect_failed(node, peer, ConnectFailure::Unproven));
        }
        steps += 1;
        if steps == REHANDSHAKE_AFTER_STEPS {
            // The handshake of a connection runs once; if its streams landed on a duplicate
            // connection that was being closed, it ended without a verdict: run it again.
            tokio::spawn(discovery::handshake(Arc::clone(shared), peer));
        }
    }
}

/// Steps of [`VERIFY_STEP`] without a proof after which the discovery handshake is run again.
const REHANDSHAKE_AFTER_STEPS: u32 = 2;

/// How long to wait for the proof before making sure the connection is still there.
const VERIFY_STEP: Duration = Duration::from_millis(500);

/// Whether `peer` proves it is `node` by `until`.
async fn proved_by(shared: &Shared, node: &str, peer: PeerId, until: tokio::time::Instant) -> bool {
    loop {
        let changed = shared.directory_changed.notified();
        if shared.is_verified(node, peer) {
            return true;
        }
        if tokio::time::timeout_at(until, changed).await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn work(took: Duration) -> Result<(), TunnelError> {
        tokio::time::sleep(took).await;
        Ok(())
    }

    /// Work is charged against the budget; time between the pieces (the waits for a slot) is
    /// not.
    #[tokio::test(start_paused = true)]
    async fn only_work_counts_against_the_budget() {
        let mut budget = Budget::new(Some(Duration::from_secs(5)));
        budget
            .spend("b", work(Duration::from_secs(2)))
            .await
            .unwrap();
        // Queueing: a minute, not charged.
        tokio::time::sleep(Duration::from_secs(60)).await;
        budget
            .spend("b", work(Duration::from_secs(2)))
            .await
            .unwrap();
        let error = budget
            .spend("b", work(Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert!(
            matches!(error, TunnelError::OpenTimedOut { ref node, within } if node == "b" && within == Duration::from_secs(5)),
            "{error}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_budget_bounds_nothing() {
        let mut budget = Budget::new(None);
        budget
            .spend("b", work(Duration::from_secs(3600)))
            .await
            .unwrap();
    }
}
