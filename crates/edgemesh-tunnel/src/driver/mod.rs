//! The task that owns the swarm: connections, relays and reservations, mDNS, hole punching.
//!
//! `lan.rs`: peers found by mDNS; `paths.rs`: which connection to a peer new streams should use,
//! and closing the others; `quic.rs`: moving proven peers to QUIC.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol as Ma;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, dcutr, identify, mdns, ping, relay};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::RelayNode;
use crate::discovery;
use crate::shared::{Command, Shared};
use crate::stats::{PathKind, TransportKind};

mod lan;
mod paths;
mod quic;

use quic::{QUIC_RETRIES, tcp_to_quic};

/// Log line (followed by the address) when the tunnel listens: tests wait for it.
pub const LISTENING: &str = "tunnel listening on ";
const RELAY_REDIAL: Duration = Duration::from_secs(3);

/// One open connection, for `/debug/peers`.
#[derive(Clone, Debug)]
pub struct ConnSummary {
    pub peer: PeerId,
    pub remote: Multiaddr,
    pub path: PathKind,
    pub transport: TransportKind,
    pub rtt: Option<Duration>,
}

#[derive(Debug)]
struct Conn {
    remote: Multiaddr,
    path: PathKind,
}

/// A configured relay and our state with it.
#[derive(Debug)]
struct RelaySlot {
    node: String,
    addrs: Vec<Multiaddr>,
    peer: Option<PeerId>,
    listener: Option<ListenerId>,
    last_dial: Option<Instant>,
}

pub(crate) struct Driver {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    relays: Vec<RelaySlot>,
    conns: HashMap<PeerId, HashMap<ConnectionId, Conn>>,
    rtt: HashMap<PeerId, Duration>,
    lan_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    waiters: HashMap<PeerId, Vec<oneshot::Sender<Result<(), String>>>>,
    /// Peers with a better path whose worse connections are kept until their streams end, and
    /// the rank of that better path.
    draining: HashMap<PeerId, u8>,
    /// QUIC dials to peers connected over TCP (the upgrade): failures only log.
    quic_upgrades: HashMap<ConnectionId, PeerId>,
    /// Peers we have reached through a relay: outside the LAN, a direct connection to one of
    /// them is a punched one even when it comes after the relayed connection closed.
    met_via_relay: HashSet<PeerId>,
    /// LAN peers on TCP, and how many more times the tick tries to move them to QUIC.
    quic_retries: HashMap<PeerId, u8>,
    /// Dials started for `Connect` requests (answered when they fail).
    our_dials: HashMap<ConnectionId, PeerId>,
    /// LAN peers not yet connected directly, and how many more times the tick redials them.
    lan_redials: HashMap<PeerId, u8>,
}

/// One tick of a bounded per-peer retry: the peers with tries left, each with the count it had
/// before this try; counts go down by one, and peers with none left are forgotten.
fn next_tries(tries: &mut HashMap<PeerId, u8>) -> Vec<(PeerId, u8)> {
    tries.retain(|_, left| *left > 0);
    tries
        .iter_mut()
        .map(|(peer, left)| {
            let had = *left;
            *left -= 1;
            (*peer, had)
        })
        .collect()
}

impl Driver {
    pub(crate) fn new(swarm: Swarm<Behaviour>, shared: Arc<Shared>) -> Self {
        let mut driver = Driver {
            swarm,
            relays: Vec::new(),
            conns: HashMap::new(),
            rtt: HashMap::new(),
            lan_addrs: HashMap::new(),
            waiters: HashMap::new(),
            draining: HashMap::new(),
            quic_upgrades: HashMap::new(),
            quic_retries: HashMap::new(),
            met_via_relay: HashSet::new(),
            our_dials: HashMap::new(),
            lan_redials: HashMap::new(),
            shared,
        };
        driver.set_relays(driver.shared.config.relays.clone());
        driver
    }

    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
                _ = tick.tick() => {
                    self.maintain_relays();
                    self.finish_draining();
                    self.redial_lan_peers();
                    self.retry_quic_upgrades();
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
        for (peer, conns) in &self.conns {
            for conn in conns.values() {
                all.push(ConnSummary {
                    peer: *peer,
                    remote: conn.remote.clone(),
                    path: conn.path,
                    transport: conn.transport(),
                    rtt: self.rtt.get(peer).copied(),
                });
            }
        }
        all
    }

    /// Dials `peer` unless connected: its LAN addresses when mDNS found it (a LAN peer is
    /// never reached through a relay), otherwise a circuit through every relay we hold.
    fn connect(&mut self, peer: PeerId, reply: oneshot::Sender<Result<(), String>>) {
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(()));
            return;
        }
        let lan = self.lan_dial_addrs(peer);
        let addrs = match lan.is_empty() {
            false => lan,
            true => self.circuit_addrs(peer),
        };
        if addrs.is_empty() {
            let _ = reply.send(Err("no LAN address and no relay connected".into()));
            return;
        }
        let waiting = self.waiters.entry(peer).or_default();
        waiting.push(reply);
        if waiting.len() > 1 {
            return; // our dial for an earlier request is in flight
        }
        // Not `NotDialing`: a hole punch attempt to this peer may be in flight, and under a NAT
        // that drops its SYNs it only fails after the dial timeout; the relay must not wait.
        match self.dial(peer, addrs, PeerCondition::Disconnected) {
            Ok(id) => {
                self.our_dials.insert(id, peer);
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "dial not started");
                let result = match self.swarm.is_connected(&peer) {
                    true => Ok(()),
                    false => Err(error.to_string()),
                };
                self.answer_waiters(peer, result);
            }
        }
    }

    /// Dials `peer` at `addrs`; the id of the connection being dialled, to follow its outcome.
    fn dial(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        condition: PeerCondition,
    ) -> Result<ConnectionId, libp2p::swarm::DialError> {
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(condition)
            .build();
        let id = opts.connection_id();
        self.swarm.dial(opts).map(|()| id)
    }

    fn circuit_addrs(&self, peer: PeerId) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        for slot in self.relays.iter().filter(|r| r.listener.is_some()) {
            let Some(relay) = slot.peer else { continue };
            for addr in &slot.addrs {
                out.push(
                    addr.clone()
                        .with(Ma::P2p(relay))
                        .with(Ma::P2pCircuit)
                        .with(Ma::P2p(peer)),
                );
            }
        }
        out
    }

    fn set_relays(&mut self, relays: Vec<RelayNode>) {
        let port = self.shared.config.listen_port;
        let me = self.shared.me().to_owned();
        let mut slots = Vec::new();
        for relay in relays.into_iter().filter(|r| r.node_name != me) {
            let addrs: Vec<Multiaddr> = relay
                .advertise_addresses
                .iter()
                .map(|ip| Multiaddr::from(*ip).with(Ma::Tcp(port)))
                .collect();
            // Keep the state of relays that stay.
            let kept = self
                .relays
                .iter()
                .position(|s| s.node == relay.node_name && s.addrs == addrs);
            match kept {
                Some(i) => slots.push(self.relays.swap_remove(i)),
                None => slots.push(RelaySlot {
                    node: relay.node_name,
                    addrs,
                    peer: None,
                    listener: None,
                    last_dial: None,
                }),
            }
        }
        for gone in std::mem::replace(&mut self.relays, slots) {
            tracing::info!(relay = %gone.node, "relay removed from relayNodes");
            if let Some(listener) = gone.listener {
                self.swarm.remove_listener(listener);
            }
        }
    }

    /// Re-dials relays we are not connected to, and asks for a reservation on those we are.
    fn maintain_relays(&mut self) {
        let now = Instant::now();
        for slot in &mut self.relays {
            match slot.peer {
                None => {
                    let due = slot.last_dial.is_none_or(|t| now - t >= RELAY_REDIAL);
                    if due {
                        slot.last_dial = Some(now);
                        for addr in &slot.addrs {
                            if let Err(error) = self.swarm.dial(addr.clone()) {
                                tracing::warn!(relay = %slot.node, %addr, %error, "cannot dial relay");
                            }
                        }
                    }
                }
                Some(peer) if slot.listener.is_none() => {
                    let Some(addr) = slot.addrs.first() else {
                        continue;
                    };
                    let circuit = addr.clone().with(Ma::P2p(peer)).with(Ma::P2pCircuit);
                    match self.swarm.listen_on(circuit) {
                        Ok(id) => slot.listener = Some(id),
                        Err(error) => {
                            tracing::warn!(relay = %slot.node, %error, "cannot ask relay for a reservation")
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!("{LISTENING}{address}");
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
            } => {
                let error = error.to_string();
                match handshake_hint(&error) {
                    Some(hint) => {
                        tracing::warn!(peer = ?peer_id, %error, "connection attempt failed: {hint}")
                    }
                    None => tracing::warn!(peer = ?peer_id, %error, "connection attempt failed"),
                }
                if self.quic_upgrades.remove(&connection_id).is_some() {
                    tracing::warn!(peer = ?peer_id, %error, "QUIC upgrade failed (UDP filtered?): staying on TCP");
                }
                // Only our own dials answer waiters: a failed hole punch or relay dial to the
                // same peer says nothing about the path being dialled for them.
                if let Some(peer) = self.our_dials.remove(&connection_id) {
                    self.answer_waiters(peer, Err(error));
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                let error = error.to_string();
                if let Some(hint) = handshake_hint(&error) {
                    tracing::warn!(from = %send_back_addr, %error, "refused a connection: {hint}");
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

    fn on_established(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
        count: u32,
    ) {
        let relayed = endpoint.is_relayed();
        let punched_before = self.conns.get(&peer).is_some_and(|c| {
            c.values()
                .any(|c| matches!(c.path, PathKind::Relayed | PathKind::Punched))
        }) || (self.met_via_relay.contains(&peer)
            && !self.lan_addrs.contains_key(&peer));
        if relayed {
            self.met_via_relay.insert(peer);
        }
        // A direct connection that appears while a relayed (or punched) one exists is the punch
        // (DCUtR punches TCP and QUIC at once).
        let path = match (relayed, punched_before) {
            (true, _) => PathKind::Relayed,
            (false, true) => PathKind::Punched,
            (false, false) => PathKind::Direct,
        };
        let conn = Conn {
            remote: endpoint.get_remote_address().clone(),
            path,
        };
        let transport = conn.transport();
        tracing::info!(%peer, remote = %conn.remote, ?path, ?transport, "connection established");
        let rank = conn.rank(self.is_relay_link(peer));
        self.conns.entry(peer).or_default().insert(id, conn);
        self.our_dials.remove(&id);
        self.quic_upgrades.remove(&id);
        if let ConnectedPoint::Dialer { address, .. } = endpoint {
            let mut relay_quic = Vec::new();
            for slot in self.relays.iter_mut().filter(|s| s.addrs.contains(address)) {
                slot.peer = Some(peer);
                self.shared.directory().relays.insert(peer);
                tracing::info!(relay = %slot.node, %peer, "connected to relay");
                relay_quic.extend(slot.addrs.iter().filter_map(tcp_to_quic));
            }
            // A QUIC connection to the relay too: its identify tells us our public QUIC address,
            // and the NAT mapping it opens is what a QUIC hole punch goes through.
            if self.shared.config.quic && !relay_quic.is_empty() {
                self.dial_quic(peer, relay_quic);
            }
        }
        self.drop_superseded(peer, rank);
        match (path, transport) {
            (PathKind::Direct, TransportKind::Tcp) => {
                self.quic_retries.entry(peer).or_insert(QUIC_RETRIES);
                self.upgrade_to_quic(peer, true);
            }
            (_, TransportKind::Quic) => {
                self.quic_retries.remove(&peer);
            }
            _ => {}
        }
        self.answer_waiters(peer, Ok(()));
        if count == 1 {
            tokio::spawn(discovery::handshake(Arc::clone(&self.shared), peer));
        }
    }

    fn on_closed(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remaining: u32,
        cause: Option<libp2p::swarm::ConnectionError>,
    ) {
        if let Some(conns) = self.conns.get_mut(&peer) {
            conns.remove(&id);
        }
        if remaining > 0 {
            return;
        }
        tracing::info!(%peer, cause = ?cause, "disconnected");
        self.conns.remove(&peer);
        self.draining.remove(&peer);
        self.shared.forget_live(peer);
        for slot in self.relays.iter_mut().filter(|s| s.peer == Some(peer)) {
            tracing::warn!(relay = %slot.node, "lost the relay; will redial");
            slot.peer = None;
            if let Some(listener) = slot.listener.take() {
                self.swarm.remove_listener(listener);
            }
        }
        self.shared.directory().relays.remove(&peer);
    }

    fn on_listener_closed(&mut self, listener: ListenerId, reason: String) {
        for slot in self
            .relays
            .iter_mut()
            .filter(|s| s.listener == Some(listener))
        {
            tracing::warn!(relay = %slot.node, %reason, "relay reservation ended");
            slot.listener = None;
        }
    }

    fn answer_waiters(&mut self, peer: PeerId, result: Result<(), String>) {
        for waiter in self.waiters.remove(&peer).unwrap_or_default() {
            let _ = waiter.send(result.clone());
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => self.on_mdns(found),
            BehaviourEvent::Mdns(mdns::Event::Expired(gone)) => {
                for (peer, addr) in gone {
                    if let Some(addrs) = self.lan_addrs.get_mut(&peer) {
                        addrs.retain(|a| *a != addr);
                    }
                }
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                self.rtt.insert(peer, rtt);
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            }) => {
                // A peer (or relay) that vanished without closing its sockets: give up on this
                // connection so that the next stream takes another path (another relay).
                tracing::warn!(%peer, %error, "peer does not answer pings: closing this connection");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Identify(identify::Event::Received { info, .. }) => {
                self.swarm
                    .behaviour_mut()
                    .dcutr
                    .observed(&info.observed_addr);
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
                tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
            }
            BehaviourEvent::RelayServer(relay::Event::ReservationReqDenied {
                src_peer_id, ..
            }) => {
                tracing::warn!(peer = %src_peer_id, "denied a relay reservation");
            }
            _ => {}
        }
    }
}

/// What a failed transport handshake most likely means, for the log: the PSK layer is the only
/// part of the handshake two honest members can disagree on.
fn handshake_hint(error: &str) -> Option<&'static str> {
    error.contains("Handshake failed").then_some(
        "handshake failed: the other side holds another PSK, or applies it another way \
         (modules.edgeTunnel.psk.mode: noise or pnet, which must be the same on every node)",
    )
}
