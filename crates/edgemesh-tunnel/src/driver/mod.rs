//! The task that owns the swarm: connections, relays and reservations, mDNS, hole punching.
//!
//! `peer.rs`: what is known of each peer, in one map; `connect.rs`: the `Connect` command from
//! request to answer; `relays.rs`: the configured relays; `lan.rs`: peers found by mDNS;
//! `paths.rs`: which connection to a peer new streams should use, and closing the others;
//! `quic.rs`: moving proven peers to QUIC.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use libp2p::core::ConnectedPoint;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{PeerId, Swarm, dcutr, identify, mdns, relay};
use tokio::sync::mpsc;

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::command::{Command, ConnSummary};
use crate::discovery;
use crate::fate::Fates;
use crate::shared::Shared;
use crate::stats::{PathKind, TransportKind};

mod connect;
mod lan;
mod liveness;
mod paths;
mod peer;
mod quic;
mod relays;

use peer::{Conn, Peers};
use quic::QUIC_RETRIES;
use relays::RelaySlot;

pub(crate) struct Driver {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    relays: Vec<RelaySlot>,
    peers: Peers,
    /// The fates of new connections, filled by the transports (`liveness.rs` reads them).
    fates: Fates,
    /// When the TCP listener may reach the outside from its port (see [`relays::DialGate`]).
    dial_gate: relays::DialGate,
}

impl Driver {
    pub(crate) fn new(swarm: Swarm<Behaviour>, shared: Arc<Shared>, fates: Fates) -> Self {
        let mut driver = Driver {
            swarm,
            relays: Vec::new(),
            peers: Peers::default(),
            shared,
            fates,
            dial_gate: relays::DialGate::new(std::time::Instant::now()),
        };
        driver.set_relays(driver.shared.config.relays.clone());
        driver
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut liveness = tokio::time::interval(liveness::CHECK_EVERY);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_check = std::time::Instant::now();
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
                _ = liveness.tick() => {
                    let now = std::time::Instant::now();
                    let since_last = now.saturating_duration_since(last_check);
                    last_check = now;
                    self.close_dead(now, since_last);
                }
                _ = tick.tick() => {
                    self.maintain_relays();
                    self.peers.forget_idle(std::time::Instant::now());
                    self.finish_draining();
                    self.redial_lan_peers();
                    self.retry_quic_upgrades();
                    self.retry_punches(std::time::Instant::now());
                }
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Connect { peer, reply } => self.connect(peer, reply),
            Command::Disconnect { peer } => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Connections { reply } => {
                let _ = reply.send(self.summaries());
            }
            Command::Relays { reply } => {
                let _ = reply.send(self.relays.iter().filter_map(|r| r.peer).collect());
            }
            Command::SetRelays(relays) => self.set_relays(relays),
        }
    }

    fn summaries(&self) -> Vec<ConnSummary> {
        let mut all = Vec::new();
        for (peer, state) in self.peers.iter() {
            let Some(links) = state.links() else { continue };
            for conn in links.conns.values() {
                all.push(ConnSummary {
                    peer: *peer,
                    remote: conn.remote.clone(),
                    path: conn.path,
                    transport: conn.transport(),
                    rtt: links.rtt,
                });
            }
        }
        all
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(listen.addr = %address, "tunnel listening");
                self.dial_gate.listening(&address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => self.on_established(peer_id, connection_id, &endpoint, num_established.get()),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => self.on_closed(peer_id, connection_id, num_established, cause),
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => self.on_dial_error(peer_id, connection_id, error),
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                let error = error.to_string();
                if let Some(hint) = connect::handshake_hint(&error) {
                    self.count_handshake_failure();
                    tracing::warn!(peer.addr = %send_back_addr, %error, hint, "refused a connection");
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                self.on_listener_closed(listener_id, format!("{reason:?}"));
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                self.on_listener_closed(listener_id, error.to_string());
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => {}
        }
    }

    /// Which path a new connection is: relayed; or direct, which is the punch when it appears
    /// while a relayed (or punched) one exists, or to a peer met through a relay outside the
    /// LAN (DCUtR punches TCP and QUIC at once).
    fn path_of(&self, peer: PeerId, relayed: bool) -> PathKind {
        let state = self.peers.get(&peer);
        let punched_before = state.is_some_and(|s| {
            s.has_path(|p| matches!(p, PathKind::Relayed | PathKind::Punched))
                || (s.met_via_relay && s.lan_addrs.is_empty())
        });
        match (relayed, punched_before) {
            (true, _) => PathKind::Relayed,
            (false, true) => PathKind::Punched,
            (false, false) => PathKind::Direct,
        }
    }

    fn on_established(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
        count: u32,
    ) {
        let relayed = endpoint.is_relayed();
        let path = self.path_of(peer, relayed);
        let remote = endpoint.get_remote_address();
        let mut conn = Conn::new(remote.clone(), path);
        conn.liveness.fate = self.fates.take(peer, remote);
        if conn.liveness.fate.is_none() {
            tracing::debug!(peer.id = %peer, peer.addr = %remote, "connection without a registered fate: pings alone judge it");
        }
        let transport = conn.transport();
        tracing::info!(peer.id = %peer, peer.addr = %conn.remote, ?path, ?transport, "connection established");
        let rank = conn.rank(self.is_relay_link(peer));
        let waiters = self.peers.established(peer, id, conn);
        if relayed {
            self.peers.entry(peer).met_via_relay = true;
        }
        if let ConnectedPoint::Dialer { address, .. } = endpoint {
            let relay_quic = self.relay_reached(peer, address);
            let reservation_due = self
                .relays
                .iter()
                .any(|r| r.peer == Some(peer) && r.listener.is_none());
            if reservation_due {
                // Ask for the reservation now rather than on the next tick (up to 1 s later):
                // until it is held, peers elsewhere cannot reach this node.
                self.maintain_relays();
            }
            self.dial_relay_over_quic(peer, relay_quic);
        }
        self.drop_superseded(peer, rank);
        self.plan_quic_upgrade(peer, path, transport);
        connect::answer(waiters, &Ok(()));
        if count == 1 {
            tokio::spawn(discovery::handshake(Arc::clone(&self.shared), peer));
        }
    }

    /// A direct TCP connection is moved to QUIC (now, and a bounded number of times later);
    /// a QUIC one ends the tries.
    fn plan_quic_upgrade(&mut self, peer: PeerId, path: PathKind, transport: TransportKind) {
        let links = self.peers.get_mut(&peer).and_then(|s| s.links_mut());
        match (path, transport, links) {
            (PathKind::Direct, TransportKind::Tcp, Some(links)) => {
                links.quic_retries.get_or_insert(QUIC_RETRIES);
                self.upgrade_to_quic(peer, true);
            }
            (_, TransportKind::Quic, Some(links)) => links.quic_retries = None,
            _ => {}
        }
    }

    fn on_closed(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remaining: u32,
        cause: Option<libp2p::swarm::ConnectionError>,
    ) {
        self.peers.closed(peer, id, remaining);
        if remaining > 0 {
            tracing::debug!(peer.id = %peer, connection.id = %id, cause = ?cause, remaining, "one connection to the peer closed");
            return;
        }
        tracing::info!(peer.id = %peer, cause = ?cause, "disconnected");
        self.shared.forget_live(peer);
        self.relay_lost(peer);
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => self.on_mdns(found),
            BehaviourEvent::Mdns(mdns::Event::Expired(gone)) => {
                for (peer, addr) in gone {
                    self.peers.expired(peer, &addr);
                }
            }
            BehaviourEvent::Keepalive(event) => self.on_ping(event),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                // A peer of our LAN (found by mDNS) sees our LAN address, which no node behind
                // another NAT can reach: offered to one, it was at times the only candidate (the
                // relay's view not in yet), and the punch dialled nothing but it.
                let lan_peer = self
                    .peers
                    .get(&peer_id)
                    .is_some_and(|s| !s.lan_addrs.is_empty());
                if !lan_peer {
                    self.swarm
                        .behaviour_mut()
                        .dcutr
                        .observed(&info.observed_addr);
                }
            }
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => {
                self.on_punch(remote_peer_id, result);
            }
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal: false,
                ..
            }) => {
                tracing::info!(relay.id = %relay_peer_id, "relay reservation accepted");
            }
            BehaviourEvent::RelayServer(relay::Event::ReservationReqDenied {
                src_peer_id, ..
            }) => {
                tracing::warn!(peer.id = %src_peer_id, "denied a relay reservation");
            }
            _ => {}
        }
    }
}
