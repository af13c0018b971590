//! The libp2p stack: TCP + noise (PSK in its prologue, or pnet under it) + yamux, relay v2 (client, and server on relay
//! nodes), DCUtR hole punching, identify, ping, mDNS, and generic streams.

use std::time::Duration;

use futures::future::Either;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::PnetConfig;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    PeerId, Swarm, Transport as _, dcutr, identify, mdns, noise, ping, relay, tcp, yamux,
};

use crate::TunnelError;
use crate::psk::Membership;

/// Identify protocol name of edgemesh agents.
const IDENTIFY_PROTOCOL: &str = "/edgemesh/id/1.0.0";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub relay_client: relay::client::Behaviour,
    pub relay_server: Toggle<relay::Behaviour>,
    pub dcutr: dcutr::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub stream: libp2p_stream::Behaviour,
}

/// Builds the swarm; `relay_server` turns on the hop protocol (relay nodes only).
pub(crate) fn build_swarm(
    keypair: Keypair,
    membership: Membership,
    relay_server: bool,
    mdns_on: bool,
) -> Result<Swarm<Behaviour>, TunnelError> {
    let swarm_err = |e: &dyn std::fmt::Display| TunnelError::Swarm(e.to_string());
    // Relayed connections run their own noise handshake end to end: it carries the prologue too.
    let relayed = membership.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|key| {
            tcp_transport(key, membership)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| swarm_err(&e))?
        .with_relay_client(move |key: &Keypair| relayed.noise(key), yamux_config)
        .map_err(|e| swarm_err(&e))?
        .with_behaviour(|key, relay_client| {
            let peer = key.public().to_peer_id();
            Ok(Behaviour {
                relay_client,
                relay_server: Toggle::from(relay_server.then(|| relay_server_behaviour(peer))),
                dcutr: dcutr::Behaviour::new(peer),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(Duration::from_secs(5))
                        .with_timeout(Duration::from_secs(10)),
                ),
                mdns: Toggle::from(mdns_behaviour(mdns_on, peer)),
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| swarm_err(&e))?
        // Tunnelled connections may be idle for long (a quiet SSH session): keep peers connected.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

/// Concurrent streams per connection, i.e. tunnelled connections between two nodes (yamux's
/// default, 512, is below what one busy node pair needs). Yamux requires 256 KiB of connection
/// receive window per stream: 4,096 × 256 KiB is its default 1 GiB window — a cap on buffered
/// data, not an allocation.
const MAX_STREAMS_PER_CONNECTION: usize = 4096;

fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(MAX_STREAMS_PER_CONNECTION);
    config
}

/// TCP, then the pnet handshake (in pnet mode) before anything else, then noise and yamux.
fn tcp_transport(
    key: &Keypair,
    membership: Membership,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let noise = membership.noise(key)?;
    let psk = membership.pnet();
    let transport = tcp
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
        .multiplex(yamux_config())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed();
    Ok(transport)
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
