//! The attestation protocol (`/edgemesh/tunnel-attest/1.0.0`), edgemesh's own: the verifier
//! sends a nonce, the prover answers with its attestation (or an empty one: no credential).
//! Framed like EdgeMesh's messages (unsigned-varint length + protobuf), with room for a
//! certificate chain.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use libp2p::{PeerId, Stream, StreamProtocol};
use libp2p_stream::OpenStreamError;
use ring::rand::{SecureRandom as _, SystemRandom};

use super::Evidence;
use super::message::{Attestation, AttestationRequest};
use super::verify::{Expected, verify};
use crate::shared::{Shared, serve_each};
use crate::wire;

/// The protocol id; EdgeMesh's Go agents do not offer it (the stream is refused at once).
pub const ATTEST_PROTOCOL: StreamProtocol = StreamProtocol::new("/edgemesh/tunnel-attest/1.0.0");
/// A chain of a few certificates fits easily.
const MAX_ATTESTATION: usize = 16 * 1024;
const NONCE_LEN: usize = 32;
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers attestation requests until the tunnel stops.
pub(crate) async fn serve(shared: Arc<Shared>, incoming: libp2p_stream::IncomingStreams) {
    serve_each(
        shared,
        incoming,
        EXCHANGE_TIMEOUT,
        "attestation request",
        answer,
    )
    .await;
}

async fn answer(shared: Arc<Shared>, _peer: PeerId, mut stream: Stream) {
    let Ok(request) = wire::read_msg::<_, AttestationRequest>(&mut stream).await else {
        return;
    };
    let nonce = request.nonce.unwrap_or_default();
    let attestation = match nonce.len() {
        NONCE_LEN => shared
            .identity
            .attest(shared.me(), *shared.local_peer(), &nonce),
        _ => None,
    };
    let _ = wire::write_msg(&mut stream, &attestation.unwrap_or_default()).await;
}

/// Tries at asking for the attestation when the stream fails: while two connections to a peer
/// exist (both sides dialled at once), a stream may land on the one being closed.
const FETCH_ATTEMPTS: u32 = 3;
const FETCH_PAUSE: Duration = Duration::from_millis(100);

/// Why no attestation came back.
enum NoAnswer {
    /// The peer does not speak the protocol: it cannot attest.
    Unsupported(String),
    /// The stream failed (closing connection, timeout): no verdict.
    Transport(String),
}

/// Asks `peer` to prove that it is `node`, and judges the answer.
pub(crate) async fn fetch(shared: &Shared, peer: PeerId, node: &str) -> Evidence {
    let mut nonce = [0u8; NONCE_LEN];
    if SystemRandom::new().fill(&mut nonce).is_err() {
        return Evidence::Unavailable("no randomness for a nonce".into());
    }
    let mut attempt = 1;
    let attestation = loop {
        let asked = tokio::time::timeout(EXCHANGE_TIMEOUT, request(shared, peer, &nonce)).await;
        let reason = match asked {
            Ok(Ok(attestation)) => break attestation,
            Ok(Err(NoAnswer::Unsupported(reason))) => return Evidence::Unattested(reason),
            Ok(Err(NoAnswer::Transport(reason))) => reason,
            Err(_) => format!("no attestation within {EXCHANGE_TIMEOUT:?}"),
        };
        if attempt == FETCH_ATTEMPTS {
            return Evidence::Unavailable(reason);
        }
        attempt += 1;
        tokio::time::sleep(FETCH_PAUSE).await;
    };
    if attestation.cert_chain.is_empty() {
        return Evidence::Unattested("the peer has no node certificate".into());
    }
    let expected = Expected {
        node,
        peer,
        nonce: &nonce,
        now: SystemTime::now(),
    };
    match verify(&attestation, &expected, &shared.identity.anchors) {
        Ok(()) => Evidence::Attested,
        Err(e) if e.is_forgery() => Evidence::Forged(e.to_string()),
        Err(e) => Evidence::Unattested(e.to_string()),
    }
}

async fn request(shared: &Shared, peer: PeerId, nonce: &[u8]) -> Result<Attestation, NoAnswer> {
    let opened = shared.control().open_stream(peer, ATTEST_PROTOCOL).await;
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(OpenStreamError::UnsupportedProtocol(_)) => {
            return Err(NoAnswer::Unsupported(
                "the peer does not attest (an EdgeMesh Go agent, or an older edgemesh)".into(),
            ));
        }
        Err(e) => return Err(NoAnswer::Transport(e.to_string())),
    };
    let request = AttestationRequest {
        nonce: Some(nonce.to_vec()),
    };
    let transport = |e: std::io::Error| NoAnswer::Transport(e.to_string());
    wire::write_msg(&mut stream, &request)
        .await
        .map_err(transport)?;
    wire::read_msg_limited(&mut stream, MAX_ATTESTATION)
        .await
        .map_err(transport)
}
