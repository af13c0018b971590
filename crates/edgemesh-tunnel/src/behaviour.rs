//! The libp2p stack: TCP + noise (PSK in its prologue, or pnet under it) + yamux, optionally QUIC
//! (for proven members only: [`QuicGate`]), relay v2 (client, and server on relay nodes), DCUtR
//! hole punching, identify, ping (at a pace set per connection: `keepalive.rs`), mDNS, and
//! generic streams.

use std::time::Duration;

use futures::future::Either;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, OptionalTransport};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::PnetConfig;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{PeerId, Swarm, Transport as _, identify, mdns, noise, quic, relay, tcp, yamux};

use crate::TunnelError;
use crate::fate::{FateMuxer, FatedYamux, Fates};
use crate::inbound::Inbound;
use crate::keepalive::{DEAD_AFTER, Keepalive};
use crate::psk::Membership;
use crate::punch::Punch;
use crate::quic_gate::QuicGate;

/// Identify protocol name of edgemesh agents.
const IDENTIFY_PROTOCOL: &str = "/edgemesh/id/1.0.0";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// First, so that a refused QUIC connection reaches no other behaviour.
    pub quic_gate: QuicGate,
    pub relay_client: relay::client::Behaviour,
    pub relay_server: Toggle<relay::Behaviour>,
    pub dcutr: Punch,
    pub identify: identify::Behaviour,
    pub keepalive: Keepalive,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Inbound proxy streams, queued (`inbound.rs` says why not libp2p-stream's `accept`).
    pub proxy_inbound: Inbound,
    pub stream: libp2p_stream::Behaviour,
}

/// What the swarm is built with, besides the key and the PSK.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StackOptions {
    /// Serve the relay hop protocol (relay nodes only).
    pub relay_server: bool,
    pub mdns: bool,
    /// QUIC next to TCP.
    pub quic: bool,
}

/// Builds the swarm.
pub(crate) fn build_swarm(
    keypair: Keypair,
    membership: Membership,
    options: StackOptions,
    fates: &Fates,
    proxy_inbound: Inbound,
) -> Result<Swarm<Behaviour>, TunnelError> {
    let swarm_err = |e: &dyn std::fmt::Display| TunnelError::Swarm(e.to_string());
    // Relayed connections run their own pnet and noise handshakes end to end (the noise one
    // carries the prologue too).
    let relayed = membership.clone();
    let (relay_transport, relay_client) = relay::client::new(keypair.public().to_peer_id());
    let boxed = |e: noise::Error| Box::new(e) as Box<dyn std::error::Error + Send + Sync>;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| tcp_transport(key, membership, fates.clone()).map_err(boxed))
        .map_err(|e| swarm_err(&e))?
        .with_other_transport(|key| quic_transport(key, options.quic, fates.clone()))
        .map_err(|e| swarm_err(&e))?
        .with_other_transport(|key| {
            secure(relay_transport, key, relayed, fates.clone()).map_err(boxed)
        })
        .map_err(|e| swarm_err(&e))?
        .with_behaviour(|key| {
            let peer = key.public().to_peer_id();
            Ok(Behaviour {
                quic_gate: QuicGate::default(),
                relay_client,
                relay_server: Toggle::from(
                    options.relay_server.then(|| relay_server_behaviour(peer)),
                ),
                dcutr: Punch::new(peer, options.quic),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.into(),
                    key.public(),
                )),
                // Pings at the pace the driver sets: it declares a busy connection dead after
                // seconds of silence (`driver/liveness.rs`).
                keepalive: Keepalive::new(DEAD_AFTER),
                mdns: Toggle::from(mdns_behaviour(options.mdns, peer)),
                proxy_inbound,
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| swarm_err(&e))?
        // Tunnelled connections may be idle for long (a quiet SSH session): keep peers connected.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

/// Concurrent streams per connection, both directions together (yamux's default, 512, is below
/// what one busy node pair needs). Yamux requires 256 KiB of connection receive window per
/// stream: 4,096 × 256 KiB is its default 1 GiB window — a cap on buffered data, not an
/// allocation. Past this limit yamux tears the whole connection down (`TooManyStreams`, every
/// stream on it cut), so it must never be reached: each side opens at most
/// [`crate::shared::STREAMS_PER_PEER`] streams to a peer (well under half of it) and makes
/// further ones wait for a free slot.
pub(crate) const MAX_STREAMS_PER_CONNECTION: usize = 4096;

fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
    config
}

/// TCP, secured by [`secure`].
fn tcp_transport(
    key: &Keypair,
    membership: Membership,
    fates: Fates,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    secure(tcp, key, membership, fates)
}

/// The pnet handshake (in pnet mode) before anything else, then noise and yamux: on TCP and on
/// relayed circuits alike, as go-libp2p's upgrader does (EdgeMesh's Go agents send pnet's nonce
/// first on a circuit too, and fail with "privnet: could not read full nonce" without it).
fn secure<T>(
    transport: T,
    key: &Keypair,
    membership: Membership,
    fates: Fates,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error>
where
    T: libp2p::Transport + Send + Unpin + 'static,
    T::Output: futures::AsyncRead + futures::AsyncWrite + Send + Unpin + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    let noise = membership.noise(key)?;
    let psk = membership.pnet();
    let transport = transport
        .and_then(move |socket, _| async move {
            match psk {
                Some(psk) => PnetConfig::new(psk)
                    .handshake(socket)
                    .await
                    .map(Either::Left),
                None => Ok(Either::Right(socket)),
            }
        })
        .upgrade(Version::V1)
        .authenticate(noise)
        .multiplex(FatedYamux(yamux_config()))
        .map(move |(peer, muxer), endpoint| {
            fates.register(peer, endpoint.get_remote_address(), muxer.fate());
            (peer, StreamMuxerBox::new(muxer))
        })
        .boxed();
    Ok(transport)
}

/// QUIC v1 when `on` (libp2p's TLS 1.3 inside; membership is checked by [`QuicGate`]).
fn quic_transport(key: &Keypair, on: bool, fates: Fates) -> Boxed<(PeerId, StreamMuxerBox)> {
    let quic = match on {
        true => {
            let mut config = quic::Config::new(key);
            config.max_concurrent_stream_limit = MAX_STREAMS_PER_CONNECTION as u32;
            OptionalTransport::some(quic::tokio::Transport::new(config))
        }
        false => OptionalTransport::none(),
    };
    quic.map(move |(peer, connection), endpoint| {
        let muxer = FateMuxer::watching(connection);
        fates.register(peer, endpoint.get_remote_address(), muxer.fate());
        (peer, StreamMuxerBox::new(muxer))
    })
    .boxed()
}

/// Relay limits sized for a data tunnel: the defaults (2 min, 128 KiB per circuit) would cut
/// every real connection.
fn relay_server_behaviour(peer: PeerId) -> relay::Behaviour {
    let config = relay::Config {
        max_reservations: 4096,
        max_reservations_per_peer: 8,
        reservation_duration: Duration::from_secs(3600),
        max_circuits: 4096,
        max_circuits_per_peer: 64,
        max_circuit_duration: Duration::from_secs(24 * 3600),
        max_circuit_bytes: 0,
        reservation_rate_limiters: Vec::new(),
        circuit_src_rate_limiters: Vec::new(),
    };
    relay::Behaviour::new(peer, config)
}

fn mdns_behaviour(on: bool, peer: PeerId) -> Option<mdns::tokio::Behaviour> {
    if !on {
        return None;
    }
    match mdns::tokio::Behaviour::new(mdns::Config::default(), peer) {
        Ok(b) => Some(b),
        Err(error) => {
            tracing::warn!(%error, "mDNS unavailable: peers of this LAN will be reached through relays");
            None
        }
    }
}
