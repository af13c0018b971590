//! What the handles ask of the task that owns the swarm (`driver/`), and what it answers: a leaf
//! that both sides use.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use crate::config::RelayNode;
use crate::error::ConnectFailure;
use crate::stats::{PathKind, TransportKind};

/// Requests to the task that owns the swarm.
#[derive(Debug)]
pub(crate) enum Command {
    /// Make sure a connection to `peer` exists (direct when a LAN address is known, else through
    /// the relays).
    Connect { peer: PeerId, reply: Waiter },
    /// Close every connection to `peer` (it failed the name check).
    Disconnect { peer: PeerId },
    /// Connections as the driver knows them, for `/debug/peers`.
    Connections {
        reply: oneshot::Sender<Vec<ConnSummary>>,
    },
    /// Peers currently serving this node as relays.
    Relays { reply: oneshot::Sender<Vec<PeerId>> },
    /// Replace `relayNodes` without a restart.
    SetRelays(Vec<RelayNode>),
}

/// Where the answer to one `Connect` request goes.
pub(crate) type Waiter = oneshot::Sender<Result<(), ConnectFailure>>;

/// One open connection, for `/debug/peers`.
#[derive(Clone, Debug)]
pub(crate) struct ConnSummary {
    pub peer: PeerId,
    pub remote: Multiaddr,
    pub path: PathKind,
    pub transport: TransportKind,
    pub rtt: Option<Duration>,
}
