//! One UDP flow: route and balance once, then relay replies back until the flow goes idle.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};

use edgemesh_lb::{PickContext, Picked};
use edgemesh_model::{Frontend, Protocol};
use tokio::net::UdpSocket;

use super::socket::{reply_socket, upstream_socket};
use super::{MAX_DATAGRAM, Received, Sessions};
use crate::metrics::{ActiveGuard, Metrics};
use crate::proxy::Proxy;
use crate::relay::Activity;

/// A live flow: where its datagrams go, and the balancer's lease on that backend.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) upstream: UdpSocket,
    reply: UdpSocket,
    client: SocketAddr,
    pub(crate) activity: Activity,
    _picked: Picked,
}

/// Routes the flow's first datagram and opens its sockets; `None` (logged) when it cannot be
/// served: no such service, no endpoint, or a socket error.
pub(crate) fn open(proxy: &Proxy, received: Received) -> Option<Session> {
    let frontend = Frontend {
        ip: received.original_dst.ip().to_canonical(),
        port: received.original_dst.port(),
        protocol: Protocol::Udp,
    };
    let (service, index) = proxy.route(&frontend)?;
    let inner = &proxy.inner;
    let ctx = PickContext {
        client: received.client.ip(),
        http_header: None,
        exclude: &[],
    };
    let Some(picked) = inner
        .balancer
        .pick(&frontend, &service, &service.ports[index], &ctx)
    else {
        Metrics::inc(&inner.metrics.no_endpoint);
        return None;
    };
    let sockets = upstream_socket(picked.backend.addr, inner.config.mark)
        .and_then(|up| Ok((up, reply_socket(received.original_dst)?)));
    match sockets {
        Ok((upstream, reply)) => {
            Metrics::inc(&inner.metrics.udp_sessions_created);
            let activity = Activity::new();
            Some(Session {
                upstream,
                reply,
                client: received.client,
                activity,
                _picked: picked,
            })
        }
        Err(error) => {
            tracing::warn!(%error, ?frontend, backend = %picked.backend.addr, "UDP session set-up failed");
            None
        }
    }
}

/// Relays the backend's replies to the client until the flow is idle, then forgets it.
pub(crate) fn spawn_replies(
    proxy: Proxy,
    sessions: Sessions,
    key: (SocketAddr, SocketAddr),
    session: Arc<Session>,
) {
    tokio::spawn(async move {
        let metrics = &proxy.inner.metrics;
        let _active = ActiveGuard::new(&metrics.udp_sessions_active);
        let idle = proxy.inner.config.udp_idle_timeout;
        tokio::select! {
            () = relay_replies(&session, metrics) => {}
            () = session.activity.idle_for(idle) => {}
        }
        let mut table = sessions.lock().unwrap_or_else(PoisonError::into_inner);
        table.remove(&key);
    });
}

async fn relay_replies(session: &Session, metrics: &Metrics) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        // A refused port (ICMP) or similar error ends the flow early instead of spinning.
        let Ok(n) = session.upstream.recv(&mut buf).await else {
            return;
        };
        match session.reply.send_to(&buf[..n], session.client).await {
            Ok(sent) => {
                session.activity.touch();
                Metrics::add(&metrics.bytes_upstream_to_client, sent as u64);
            }
            Err(_) => Metrics::inc(&metrics.udp_datagrams_dropped),
        }
    }
}
