//! EdgeMesh's discovery handshake (`/libp2p/tunnel-discovery/1.0.0`): on every new connection
//! each side tells the other its node name; the claimant is asked to prove it
//! ([`crate::attest`], a protocol of its own) and the claim is checked against the bindings. Relays
//! also answer LOOKUP requests: "which peer is node X?" from the names they verified.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{PeerId, Stream};

use crate::attest::{self, Evidence};
use crate::command::Command;
use crate::shared::{Shared, Verdict, serve_each};
use crate::wire::{self, DISCOVERY_PROTOCOL, Discovery, LOOKUP, MsgType};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn msg(kind: MsgType, protocol: &str, node: &str) -> Discovery {
    Discovery {
        r#type: Some(kind as i32),
        protocol: Some(protocol.to_owned()),
        node_name: Some(node.to_owned()),
        peer_id: None,
    }
}

/// A failed handshake is tried again this often, this many times: EdgeMesh's Go agent connects
/// to its relays before it registers its stream handlers, so a relay's handshake with a Go agent
/// that just started is refused ("protocol not supported") and would leave the name unknown.
const HANDSHAKE_ATTEMPTS: u32 = 3;
const HANDSHAKE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Outbound side, run once per newly connected peer.
pub(crate) async fn handshake(shared: Arc<Shared>, peer: PeerId) {
    for attempt in 1..=HANDSHAKE_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(HANDSHAKE_RETRY_PAUSE).await;
        }
        if handshake_once(&shared, peer).await {
            return;
        }
    }
}

/// One handshake; false when it failed (the peer may not serve the protocol yet).
async fn handshake_once(shared: &Arc<Shared>, peer: PeerId) -> bool {
    let exchange = async {
        let mut stream = shared
            .control()
            .open_stream(peer, DISCOVERY_PROTOCOL)
            .await
            .map_err(|e| e.to_string())?;
        let hello = msg(MsgType::Connect, "MDNS", shared.me());
        wire::write_msg(&mut stream, &hello)
            .await
            .map_err(|e| e.to_string())?;
        let answer: Discovery = wire::read_msg(&mut stream)
            .await
            .map_err(|e| e.to_string())?;
        match (answer.kind(), answer.node_name) {
            (Some(MsgType::Success), Some(name)) if !name.is_empty() => Ok(name),
            (kind, _) => Err(format!("peer answered {kind:?}")),
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await {
        Ok(Ok(name)) => {
            let evidence = attest::fetch(shared, peer, &name).await;
            accept_claim(shared, &name, peer, evidence).await;
            return true;
        }
        Ok(Err(reason)) => tracing::debug!(peer.id = %peer, %reason, "discovery handshake failed"),
        Err(_) => tracing::debug!(peer.id = %peer, "discovery handshake timed out"),
    }
    false
}

async fn accept_claim(shared: &Shared, name: &str, peer: PeerId, evidence: Evidence) {
    match shared.claim(name, peer, evidence).await {
        Ok(Verdict::Accepted) => tracing::info!(node = %name, peer.id = %peer, "peer identified"),
        Ok(Verdict::Refused) => {
            let _ = shared.send(Command::Disconnect { peer }).await;
        }
        Ok(Verdict::Undecided) => {}
        Err(error) => tracing::warn!(%error, "cannot save peer pins"),
    }
}

/// Inbound side: answers handshakes and lookups until the tunnel stops.
pub(crate) async fn serve(shared: Arc<Shared>, incoming: libp2p_stream::IncomingStreams) {
    serve_each(
        shared,
        incoming,
        HANDSHAKE_TIMEOUT,
        "inbound discovery",
        answer,
    )
    .await;
}

async fn answer(shared: Arc<Shared>, peer: PeerId, mut stream: Stream) {
    let Ok(request) = wire::read_msg::<_, Discovery>(&mut stream).await else {
        return;
    };
    let protocol = request.protocol.clone().unwrap_or_default();
    let node = request.node_name.clone().unwrap_or_default();
    let reply = if protocol == LOOKUP {
        lookup_answer(&shared, &node)
    } else {
        // The claimant proves the name (or not) before it is answered.
        let evidence = attest::fetch(&shared, peer, &node).await;
        match shared.claim(&node, peer, evidence).await {
            Ok(Verdict::Accepted) => {
                tracing::info!(%node, peer.id = %peer, "peer identified");
                msg(MsgType::Success, &protocol, shared.me())
            }
            // No verdict: no answer either (the peer's handshake fails without a refusal).
            Ok(Verdict::Undecided) => return,
            Ok(Verdict::Refused) | Err(_) => {
                let _ = wire::write_msg(&mut stream, &msg(MsgType::Failed, &protocol, "")).await;
                let _ = shared.send(Command::Disconnect { peer }).await;
                return;
            }
        }
    };
    let _ = wire::write_msg(&mut stream, &reply).await;
}

fn lookup_answer(shared: &Shared, node: &str) -> Discovery {
    let known = shared.directory().live.get(node).copied();
    match known {
        Some(peer) => Discovery {
            peer_id: Some(peer.to_bytes()),
            ..msg(MsgType::Success, LOOKUP, node)
        },
        None => msg(MsgType::Failed, LOOKUP, node),
    }
}

/// Asks `relay` which peer is `node`.
pub(crate) async fn lookup(shared: &Shared, relay: PeerId, node: &str) -> Option<PeerId> {
    let ask = async {
        let mut stream = shared
            .control()
            .open_stream(relay, DISCOVERY_PROTOCOL)
            .await
            .ok()?;
        // Not CONNECT: EdgeMesh's Go agent takes any CONNECT on this protocol for a peer
        // announcing its own name, and would map `node` to us. It drops other types unanswered;
        // our relays look at `protocol` only.
        wire::write_msg(&mut stream, &msg(MsgType::Success, LOOKUP, node))
            .await
            .ok()?;
        let answer: Discovery = wire::read_msg(&mut stream).await.ok()?;
        if answer.kind() != Some(MsgType::Success) {
            return None;
        }
        PeerId::from_bytes(&answer.peer_id?).ok()
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, ask)
        .await
        .ok()
        .flatten()
}
