use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::swarm::{ConnectionId, DialError};
use tokio::sync::oneshot;

use super::*;
use crate::error::ConnectFailure;

fn a_peer() -> PeerId {
    Keypair::generate_ed25519().public().to_peer_id()
}

fn conn(addr: &str, path: PathKind) -> Conn {
    Conn::new(addr.parse().expect("address"), path)
}

#[test]
fn a_peer_that_disconnects_leaves_nothing_behind() {
    let mut peers = Peers::default();
    let peer = a_peer();
    let (first, second) = (
        ConnectionId::new_unchecked(1),
        ConnectionId::new_unchecked(2),
    );
    peers.established(
        peer,
        first,
        conn("/ip4/203.0.113.1/tcp/1", PathKind::Direct),
    );
    peers.established(
        peer,
        second,
        conn("/ip4/203.0.113.1/udp/1/quic-v1", PathKind::Direct),
    );
    let links = peers.entry(peer).links_mut().expect("connected");
    links.rtt = Some(Duration::from_millis(3));
    links.draining = Some(Draining {
        better: 0,
        since: Instant::now(),
    });
    links.quic_retries = Some(4);

    peers.closed(peer, first, 1);
    assert_eq!(peers.links(&peer).map(|l| l.conns.len()), Some(1));
    peers.closed(peer, second, 0);
    assert!(peers.get(&peer).is_none(), "{:?}", peers.get(&peer));
    assert_eq!(peers.len(), 0);
}

#[test]
fn a_peer_met_through_a_relay_is_remembered_as_such_for_a_while_only() {
    let mut peers = Peers::default();
    let peer = a_peer();
    let relayed = ConnectionId::new_unchecked(1);
    peers.established(peer, relayed, conn("/p2p-circuit", PathKind::Relayed));
    peers.entry(peer).met_via_relay = true;
    peers.entry(peer).links_mut().expect("connected").rtt = Some(Duration::from_millis(9));

    peers.closed(peer, relayed, 0);
    // The punched connection may land just after the relayed one closed: still a punch.
    let state = peers.get(&peer).expect("remembered");
    assert!(state.met_via_relay && state.links().is_none(), "{state:?}");
    peers.forget_idle(Instant::now());
    assert_eq!(peers.len(), 1);

    peers.forget_idle(Instant::now() + RELAYED_MEMORY);
    assert_eq!(peers.len(), 0);
}

#[test]
fn a_lan_peer_keeps_only_its_addresses_until_mdns_forgets_them() {
    let mut peers = Peers::default();
    let peer = a_peer();
    let addr: Multiaddr = "/ip4/192.0.2.11/tcp/20006".parse().expect("address");
    peers.entry(peer).lan_addrs.push(addr.clone());
    let id = ConnectionId::new_unchecked(7);
    peers.established(
        peer,
        id,
        conn("/ip4/192.0.2.11/tcp/20006", PathKind::Direct),
    );
    peers.entry(peer).links_mut().expect("connected").rtt = Some(Duration::from_millis(1));

    peers.closed(peer, id, 0);
    let state = peers.get(&peer).expect("still on the LAN");
    assert!(matches!(state.phase, Phase::Apart), "{:?}", state.phase);
    assert_eq!(state.lan_addrs, vec![addr.clone()]);

    peers.expired(peer, &addr);
    assert_eq!(peers.len(), 0);
}

#[test]
fn a_failed_connect_dial_answers_its_waiters_and_is_forgotten() {
    let mut peers = Peers::default();
    let peer = a_peer();
    let dial = ConnectionId::new_unchecked(3);
    let (reply, mut answer) = oneshot::channel();
    peers.entry(peer).phase = Phase::Dialling {
        dial,
        waiters: vec![reply],
    };
    // Another dial to the peer (a hole punch, a relay's) says nothing about ours.
    assert!(
        peers
            .dial_failed(peer, ConnectionId::new_unchecked(4))
            .is_empty()
    );

    let waiters = peers.dial_failed(peer, dial);
    super::super::connect::answer(
        waiters,
        &Err(ConnectFailure::Dial(DialError::NoAddresses.into())),
    );
    assert_eq!(peers.len(), 0);
    let got = answer.try_recv().expect("answered");
    assert!(matches!(got, Err(ConnectFailure::Dial(_))), "{got:?}");
}

#[test]
fn a_connection_answers_the_waiters_of_a_dial() {
    let mut peers = Peers::default();
    let peer = a_peer();
    let (reply, _answer) = oneshot::channel();
    peers.entry(peer).phase = Phase::Dialling {
        dial: ConnectionId::new_unchecked(5),
        waiters: vec![reply],
    };
    let inbound = ConnectionId::new_unchecked(6);
    let waiters = peers.established(
        peer,
        inbound,
        conn("/ip4/192.0.2.12/tcp/1", PathKind::Direct),
    );
    assert_eq!(waiters.len(), 1);
    assert!(
        peers
            .links(&peer)
            .is_some_and(|l| l.conns.contains_key(&inbound))
    );
}

#[test]
fn bounded_tries_count_down_then_stop() {
    let mut left = Some(2);
    assert_eq!(take_try(&mut left), Some(2));
    assert_eq!(take_try(&mut left), Some(1));
    assert_eq!(take_try(&mut left), None);
    assert_eq!(left, None);
}
