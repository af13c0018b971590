//! One UDP flow: route and balance once, then relay replies back until the flow goes idle.
//!
//! A flow to a backend this node reaches directly uses a marked socket connected to it; a flow
//! the dialer sends elsewhere (the tunnel) queues its datagrams until the channel is open, then
//! pumps both ways through it.

use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::sync::{Arc, OnceLock, PoisonError};

use edgemesh_copy::Activity;
use edgemesh_host::fd_in_reserve;
use edgemesh_lb::{Destination, PickContext, Picked};
use edgemesh_model::{Frontend, Protocol};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::socket::{reply_socket, upstream_socket};
use super::table::Recency;
use super::{Received, Sessions};
use crate::dialer::{DatagramChannel, DatagramDial};
use crate::metrics::{ActiveGuard, Metrics, UdpDrop};
use crate::proxy::Proxy;
use crate::service_metrics::ServiceCounters;

/// Datagrams a flow may queue while its channel opens; more are dropped, as a network would.
const CHANNEL_QUEUE: usize = 256;

/// A live flow: where its datagrams go, and the balancer's lease on that backend.
#[derive(Debug)]
pub(crate) struct Session {
    upstream: Upstream,
    reply: UdpSocket,
    client: SocketAddr,
    pub(crate) activity: Activity,
    /// The service's counters: flows, errors and bytes.
    pub(crate) counters: Arc<ServiceCounters>,
    /// The flow's task, aborted when the session is evicted so its sockets are freed. An abort
    /// costs nothing per datagram; a `Notify` branch in the task's `select!`, polled on every
    /// reply, pushed datapath_udp_burst's 200,000-datagram flood past its 10 s limit.
    task: OnceLock<AbortHandle>,
    _picked: Picked,
}

#[derive(Debug)]
enum Upstream {
    /// A marked socket connected to the backend.
    Socket(UdpSocket),
    /// The queue in front of a datagram channel.
    Channel(mpsc::Sender<Vec<u8>>),
}

impl Upstream {
    fn in_fd_reserve(&self) -> bool {
        match self {
            Upstream::Socket(socket) => fd_in_reserve(socket.as_fd()),
            Upstream::Channel(_) => false,
        }
    }
}

/// What the flow's task needs to open its datagram channel.
pub(crate) struct ChannelStart {
    dial: DatagramDial,
    queue: mpsc::Receiver<Vec<u8>>,
}

impl Session {
    /// Sends without waiting on the flow; the reason when the datagram was dropped.
    pub(crate) fn send(&self, payload: &[u8]) -> Result<(), UdpDrop> {
        match &self.upstream {
            // A plain non-blocking send: tokio's `try_send` refuses until the reactor has seen
            // the new socket writable, which would drop every flow's first datagram.
            Upstream::Socket(socket) => match socket2::SockRef::from(socket).send(payload) {
                Ok(_) => Ok(()),
                // A full send buffer is a full queue; anything else (a refused port) a failure.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(UdpDrop::QueueFull),
                Err(_) => Err(UdpDrop::SendFailed),
            },
            Upstream::Channel(queue) => match queue.try_send(payload.to_vec()) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => Err(UdpDrop::QueueFull),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(UdpDrop::SendFailed),
            },
        }
    }

    /// Ends the session's task (evicted to make room for a new flow); idempotent. The task is
    /// known from [`spawn_replies`] on, which runs before the table can evict the session (only
    /// the next flow's first datagram, handled after it, evicts).
    pub(crate) fn close(&self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }

    async fn reply(&self, datagram: &[u8], metrics: &Metrics) {
        match self.reply.send_to(datagram, self.client).await {
            Ok(sent) => {
                self.activity.touch();
                Metrics::add(&metrics.bytes_upstream_to_client, sent as u64);
                Metrics::add(&self.counters.bytes_to_client, sent as u64);
            }
            Err(_) => metrics.udp_dropped(UdpDrop::ReplyFailed),
        }
    }
}

/// The table evicts the session whose last datagram, either way, is the oldest.
impl Recency for Arc<Session> {
    type Stamp = Instant;
    fn last_active(&self) -> Instant {
        self.activity.last()
    }
}

/// Routes the flow's first datagram and opens its sockets; `None` (logged) when it cannot be
/// served: no such service, no endpoint, or a socket error.
pub(crate) fn open(proxy: &Proxy, received: Received) -> Option<(Session, Option<ChannelStart>)> {
    let frontend = Frontend {
        ip: received.original_dst.ip().to_canonical(),
        port: received.original_dst.port(),
        protocol: Protocol::Udp,
    };
    let routed = proxy.route(&frontend)?;
    let (frontend, service, index) = (routed.frontend, &routed.service, routed.index);
    let foreign = proxy.foreign_backends(&routed);
    let inner = &proxy.inner;
    let ctx = PickContext {
        client: received.client.ip(),
        http_header: None,
        exclude: &foreign,
    };
    let to = Destination {
        frontend: &frontend,
        service,
        port: &service.ports[index],
    };
    let Some(picked) = inner.balancer.pick(to, &ctx) else {
        Metrics::inc(&inner.metrics.no_endpoint);
        Metrics::inc(&routed.counters.errors);
        return None;
    };
    let connect_timeout = inner.config.connect_timeout;
    let dial = inner
        .dialer
        .dial_udp(&picked.backend, &frontend, connect_timeout);
    let (upstream, channel) = match dial {
        Some(dial) => {
            let (tx, queue) = mpsc::channel(CHANNEL_QUEUE);
            (
                Ok(Upstream::Channel(tx)),
                Some(ChannelStart { dial, queue }),
            )
        }
        None => (
            upstream_socket(&*inner.config.sockets, picked.backend.addr).map(Upstream::Socket),
            None,
        ),
    };
    let sockets = upstream.and_then(|up| {
        Ok((
            up,
            reply_socket(&*inner.config.sockets, received.original_dst)?,
        ))
    });
    match sockets {
        // The flow would keep a descriptor the rest of the process needs (see
        // `edgemesh_host::fd_in_reserve`): its sockets are closed, the datagram dropped.
        Ok((upstream, reply)) if upstream.in_fd_reserve() || fd_in_reserve(reply.as_fd()) => {
            Metrics::inc(&inner.metrics.fd_reserve_refused);
            tracing::debug!(client = %received.client, "descriptor reserve reached: UDP flow refused");
            None
        }
        Ok((upstream, reply)) => {
            Metrics::inc(&inner.metrics.udp_sessions_created);
            let session = Session {
                upstream,
                reply,
                client: received.client,
                activity: Activity::new(),
                counters: Arc::clone(&routed.counters),
                task: OnceLock::new(),
                _picked: picked,
            };
            Some((session, channel))
        }
        Err(error) => {
            tracing::warn!(%error, ?frontend, backend = %picked.backend.addr, "UDP session set-up failed");
            None
        }
    }
}

/// Relays the backend's replies to the client until the flow is idle, then forgets it; an
/// eviction aborts the task ([`Session::close`]).
pub(crate) fn spawn_replies(
    proxy: Proxy,
    sessions: Sessions,
    key: (SocketAddr, SocketAddr),
    session: Arc<Session>,
    channel: Option<ChannelStart>,
) {
    let task = Arc::clone(&session);
    let handle = tokio::spawn(async move {
        let metrics = &proxy.inner.metrics;
        let _active = ActiveGuard::new(&metrics.udp_sessions_active);
        let idle = proxy.inner.config.udp_idle_timeout;
        match channel {
            // The dialer bounds the open (its work by the connect timeout, its queueing for a
            // tunnel slot by the tunnel); the idle clock starts once the channel is open, so a
            // flow that waited its turn is not taken for an idle one.
            Some(start) => {
                if let Some((channel, queue)) = open_channel(&session, start).await {
                    session.activity.touch();
                    let pumped = pump(&session, &*channel, queue, metrics);
                    until_idle(&session, idle, pumped).await;
                }
            }
            None => until_idle(&session, idle, relay_replies(&session, metrics)).await,
        }
        let mut table = sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // Only this session: after an eviction the key may belong to a newer flow.
        table.remove_if(&key, |current| Arc::ptr_eq(current, &session));
    });
    // Set once, here; an aborted or finished task makes `abort` a no-op.
    let _ = task.task.set(handle.abort_handle());
}

/// Runs `relay` until it ends or the flow has been idle for `idle`.
async fn until_idle(session: &Session, idle: std::time::Duration, relay: impl Future<Output = ()>) {
    tokio::select! {
        () = relay => {}
        () = session.activity.idle_for(idle) => {}
    }
}

async fn relay_replies(session: &Session, metrics: &Metrics) {
    let Upstream::Socket(upstream) = &session.upstream else {
        return;
    };
    // A refused port (ICMP) or similar error ends the flow early instead of spinning.
    while let Ok(datagram) = edgemesh_copy::datagram::recv_datagram(upstream).await {
        session.reply(&datagram, metrics).await;
    }
}

/// Opens the flow's datagram channel; `None` (logged) when it did not open. The datagrams the
/// client sent meanwhile wait in the queue.
async fn open_channel(
    session: &Session,
    start: ChannelStart,
) -> Option<(Box<dyn DatagramChannel>, mpsc::Receiver<Vec<u8>>)> {
    let ChannelStart { dial, queue } = start;
    match dial.await {
        Ok(channel) => Some((channel, queue)),
        Err(error) => {
            tracing::warn!(%error, client = %session.client, "UDP flow: the channel did not open");
            None
        }
    }
}

/// Moves queued datagrams out and replies back until either side closes.
async fn pump(
    session: &Session,
    channel: &dyn DatagramChannel,
    mut queue: mpsc::Receiver<Vec<u8>>,
    metrics: &Metrics,
) {
    loop {
        tokio::select! {
            datagram = queue.recv() => match datagram {
                Some(datagram) if !channel.send(&datagram) => metrics.udp_dropped(UdpDrop::QueueFull),
                Some(_) => {}
                None => return,
            },
            reply = channel.recv() => match reply {
                Some(datagram) => session.reply(&datagram, metrics).await,
                None => return,
            },
        }
    }
}
