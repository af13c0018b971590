//! State shared by the swarm driver, the stream handlers and the handles.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use edgemesh_model::SnapshotCell;
use futures::StreamExt as _;
use libp2p::{PeerId, Stream};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::TunnelError;
use crate::attest::{Evidence, NodeIdentity};
use crate::command::Command;
use crate::config::TunnelConfig;
use crate::pins::{Claim, PeerPins, PinVerdict};
use crate::slots::SlotPressure;
use crate::stats::PeerCounters;

/// Tunnel streams this node has open (or opening) to one peer at most. yamux tears the whole
/// connection down, cutting every stream on it, when a stream past its limit
/// ([`crate::behaviour::MAX_STREAMS_PER_CONNECTION`], both directions together) is opened; with each side under
/// half of it, and room left for streams still closing, it is never reached. A stream past this
/// waits for a slot (back-pressure), at most [`crate::client`]'s `SLOT_WAIT`. (QUIC's limit, per direction, is
/// the same 4,096: a QUIC connection never gets near it either.)
pub(crate) const STREAMS_PER_PEER: usize = 2000;

/// Streams being opened to one peer at once. libp2p-stream opens a connection's streams one
/// after the other (one protocol negotiation, a round trip, at a time), so a burst of opens
/// queues there, and the queue counted against the stream-open timeout: of 5,000 connections
/// opened at once, 4,700 failed with "no stream within 1s". Queued here instead, the timeout
/// again measures the open itself.
pub(crate) const OPENING_PER_PEER: usize = 32;

/// Names of peers: bound (attested, or pinned on first use; persisted) and verified on a live
/// connection.
#[derive(Debug)]
pub(crate) struct Directory {
    pub pins: PeerPins,
    /// Names verified by a discovery handshake on a current connection.
    pub live: HashMap<String, PeerId>,
    pub relays: HashSet<PeerId>,
}

/// How many streams this node may have open to one peer, and how many it may be opening at once
/// (`client.rs` explains both limits).
#[derive(Debug)]
pub(crate) struct StreamSlots {
    /// [`STREAMS_PER_PEER`] slots, each held by a stream until it is dropped.
    pub open: Arc<Semaphore>,
    /// [`OPENING_PER_PEER`] slots, each held while a stream is being opened.
    pub opening: Arc<Semaphore>,
    /// Opens waiting for an `open` slot: idle UDP flows give theirs up to them.
    pub pressure: Arc<SlotPressure>,
}

pub(crate) struct Shared {
    pub config: TunnelConfig,
    /// This node's peer id.
    pub peer_id: PeerId,
    pub identity: NodeIdentity,
    pub snapshot: Arc<SnapshotCell>,
    pub directory: Mutex<Directory>,
    pub directory_changed: Notify,
    pub counters: Mutex<HashMap<PeerId, Arc<PeerCounters>>>,
    /// Per peer, the slots of the streams this node may have open to it at once
    /// (`client::STREAMS_PER_PEER`).
    pub stream_slots: Mutex<HashMap<PeerId, Arc<StreamSlots>>>,
    pub commands: mpsc::Sender<Command>,
    pub control: Mutex<libp2p_stream::Control>,
    /// Transport handshakes that failed where the PSK layer is the likely cause (both
    /// directions): `edgemesh_tunnel_handshake_failures_total`, read by `edgemesh doctor` to
    /// tell a wrong PSK from an unreachable relay.
    pub handshake_failures: std::sync::atomic::AtomicU64,
    /// Remote UDP flows that gave their stream slot up to waiting opens
    /// (`edgemesh_tunnel_udp_flows_yielded_total`; see [`SlotPressure`]).
    pub udp_flows_yielded: Arc<std::sync::atomic::AtomicU64>,
    /// Held while the pins are written (`save_pins`), so saves do not overtake each other.
    pub pins_saving: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node", &self.config.node_name)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn me(&self) -> &str {
        &self.config.node_name
    }

    pub fn directory(&self) -> MutexGuard<'_, Directory> {
        self.directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn control(&self) -> libp2p_stream::Control {
        self.control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn counters(&self, peer: PeerId) -> Arc<PeerCounters> {
        let mut all = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(all.entry(peer).or_default())
    }

    /// The stream slots of `peer` (see [`Shared::stream_slots`]).
    pub fn stream_slots(&self, peer: PeerId) -> Arc<StreamSlots> {
        let mut all = self
            .stream_slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(all.entry(peer).or_insert_with(|| {
            Arc::new(StreamSlots {
                open: Arc::new(Semaphore::new(STREAMS_PER_PEER)),
                opening: Arc::new(Semaphore::new(OPENING_PER_PEER)),
                pressure: Arc::default(),
            })
        }))
    }

    pub fn local_peer(&self) -> &PeerId {
        &self.peer_id
    }

    /// Decides on `peer`'s claim to be `node`, given what its attestation proved, and records
    /// it when accepted. A peer whose binding an attestation replaced is disconnected here.
    pub async fn claim(
        &self,
        node: &str,
        peer: PeerId,
        evidence: Evidence,
    ) -> Result<Verdict, TunnelError> {
        let claim = match &evidence {
            Evidence::Forged(reason) => {
                tracing::warn!(%node, peer.id = %peer, %reason, "refusing peer: its node attestation is false");
                return Ok(Verdict::Refused);
            }
            Evidence::Unavailable(reason) => {
                tracing::debug!(%node, peer.id = %peer, %reason, "no answer to the attestation request: the claim waits for the next handshake");
                return Ok(Verdict::Undecided);
            }
            Evidence::Attested => Claim::Attested,
            Evidence::Unattested(_) => Claim::Unattested,
        };
        let verdict = self
            .directory()
            .pins
            .check(node, peer, claim, self.identity.policy);
        if verdict.changes_pins() {
            self.save_pins().await?;
        }
        let replaced = match verdict {
            PinVerdict::Conflict(bound) => {
                log_conflict(node, peer, bound.peer, bound.attested, &evidence);
                return Ok(Verdict::Refused);
            }
            PinVerdict::Unattested => {
                let reason = unattested_reason(&evidence);
                tracing::warn!(%node, peer.id = %peer, %reason, "refusing peer: it did not prove its node name with a node certificate (modules.edgeTunnel.nodeIdentity.unattestedPeers)");
                return Ok(Verdict::Refused);
            }
            PinVerdict::Attested { replaced } => {
                tracing::info!(%node, peer.id = %peer, previous = ?replaced, "node name attested by the node's certificate");
                replaced
            }
            PinVerdict::Known | PinVerdict::Pinned => None,
        };
        self.directory().live.insert(node.to_owned(), peer);
        self.directory_changed.notify_waiters();
        if let Some(old) = replaced.filter(|old| *old != peer) {
            // The name's earlier key (a restarted node's old one, or an impostor's pin).
            let _ = self.send(Command::Disconnect { peer: old }).await;
        }
        Ok(Verdict::Accepted)
    }

    /// Writes the pins to disk, one save at a time, each with the table as it is then (so the
    /// last one written is the newest). The write syncs the disk twice, which can take seconds
    /// on a busy disk; it used to run under the directory lock, which the swarm driver takes on
    /// its events, on a runtime worker thread: a new peer's pin could hold up the whole node.
    /// Now the lock is held only to encode, and the write runs on a blocking thread.
    async fn save_pins(&self) -> Result<(), TunnelError> {
        let _one_at_a_time = self.pins_saving.lock().await;
        let Some((path, json)) = self.directory().pins.encoded()? else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || crate::fsutil::write_atomic(&path, &json, 0o600))
            .await
            .map_err(|_| TunnelError::Stopped)?
    }

    /// The verified (or pinned) peer of `node`.
    pub fn peer_of(&self, node: &str) -> Option<PeerId> {
        let dir = self.directory();
        dir.live.get(node).copied().or_else(|| dir.pins.get(node))
    }

    /// The peer verified as `node` on a live connection.
    pub fn live_peer_of(&self, node: &str) -> Option<PeerId> {
        self.directory().live.get(node).copied()
    }

    /// Whether `peer`'s name `node` has been verified on a live connection.
    pub fn is_verified(&self, node: &str, peer: PeerId) -> bool {
        self.directory().live.get(node) == Some(&peer)
    }

    pub fn forget_live(&self, peer: PeerId) {
        self.directory().live.retain(|_, p| *p != peer);
    }

    pub async fn send(&self, command: Command) -> Result<(), TunnelError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| TunnelError::Stopped)
    }
}

/// What became of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    /// Refused: the caller disconnects the peer.
    Refused,
    /// No verdict (the attestation request got no answer): nothing recorded, nobody cut off.
    Undecided,
}

fn unattested_reason(evidence: &Evidence) -> &str {
    match evidence {
        Evidence::Unattested(reason) | Evidence::Forged(reason) | Evidence::Unavailable(reason) => {
            reason
        }
        Evidence::Attested => "",
    }
}

fn log_conflict(node: &str, peer: PeerId, bound: PeerId, attested: bool, evidence: &Evidence) {
    let reason = unattested_reason(evidence);
    if attested {
        tracing::warn!(%node, peer.id = %peer, pinned = %bound, %reason, "refusing peer: it claims a node name whose owner proved it with a node certificate, and proves nothing itself");
    } else {
        tracing::warn!(%node, peer.id = %peer, pinned = %bound, %reason, "refusing peer: it claims a node name pinned to another key (remove the pin if the node was re-installed, or give nodes their certificates: modules.edgeTunnel.nodeIdentity)");
    }
}

/// Answers each stream of `incoming` in a task of its own until the tunnel stops; an answer
/// that takes longer than `timeout` is dropped (logged at debug: `timed out`, with `what`).
pub(crate) async fn serve_each<F, Fut>(
    shared: Arc<Shared>,
    mut incoming: libp2p_stream::IncomingStreams,
    timeout: Duration,
    what: &'static str,
    answer: F,
) where
    F: Fn(Arc<Shared>, PeerId, Stream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    while let Some((peer, stream)) = incoming.next().await {
        let answered = tokio::time::timeout(timeout, answer(Arc::clone(&shared), peer, stream));
        tokio::spawn(async move {
            if answered.await.is_err() {
                tracing::debug!(peer.id = %peer, what, "timed out");
            }
        });
    }
}
