//! UDP through TPROXY: one transparent socket for every UDP service port, one session per
//! (client, original destination) flow, expired after an idle period.
//!
//! # What the kernel side must provide (the netfilter engineer's rules)
//!
//! For IPv4, with `MARK` the TPROXY mark, `T` a free routing table and `PORT` the port of
//! [`TproxySocket::bind`] (the policy route is `edgemesh_host::ensure_tproxy_route`):
//!
//! ```text
//! ip rule add fwmark MARK lookup T
//! ip route add local 0.0.0.0/0 dev lo table T
//! # prerouting (filter-type chain, priority mangle): traffic from pods / other hosts
//! meta l4proto udp ip daddr . udp dport @udp_services tproxy ip to :PORT meta mark set MARK accept
//! # output (route-type chain): traffic the host itself sends is marked, re-routed to lo and
//! # comes back through prerouting where the rule above takes it
//! meta mark & BYPASS != BYPASS ip daddr . udp dport @udp_services meta mark set MARK
//! ```
//!
//! The agent's own upstream sockets carry the bypass mark ([`crate::ProxyConfig::sockets`]) and
//! the output rule must skip them. The reply sockets send from the service address with
//! `IP_TRANSPARENT`, which needs no rule.
//!
//! Sockets: one receiver in total, and per live session one upstream socket plus one reply
//! socket — nothing per service port. Sessions are capped by
//! [`crate::ProxyConfig::max_udp_sessions`]: a new flow that finds the table full ends the
//! least recently active session and takes its place (`table`). IPv6 is not done yet (the same with
//! `IPV6_TRANSPARENT` / `IPV6_RECVORIGDSTADDR`).

mod session;
mod socket;
mod table;

pub use socket::{Received, TproxySocket};

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::metrics::{Metrics, UdpDrop};
use crate::proxy::Proxy;
use session::Session;
use table::SessionTable;

/// Live sessions by (client, original destination), at most
/// [`crate::ProxyConfig::max_udp_sessions`].
pub(crate) type Sessions = Arc<Mutex<SessionTable<(SocketAddr, SocketAddr), Arc<Session>>>>;

impl Proxy {
    /// Receives forever on the transparent socket and forwards each datagram to its session's
    /// backend, creating the session on the flow's first datagram.
    pub async fn serve_udp(&self, socket: TproxySocket) -> io::Result<()> {
        let capacity = self.inner.config.max_udp_sessions;
        let sessions: Sessions = Arc::new(Mutex::new(SessionTable::new(capacity)));
        let mut buf = vec![0u8; edgemesh_copy::datagram::MAX_DATAGRAM];
        loop {
            let received = match socket.recv(&mut buf).await {
                Ok(received) => received,
                Err(error) => {
                    tracing::debug!(%error, "UDP receive failed");
                    continue;
                }
            };
            if let Some(drops) = received.kernel_drops {
                let counter = &self.inner.metrics.udp_receive_buffer_drops;
                counter.fetch_max(u64::from(drops), std::sync::atomic::Ordering::Relaxed);
            }
            self.forward(&sessions, received, &buf[..received.len]);
        }
    }

    fn forward(&self, sessions: &Sessions, received: Received, payload: &[u8]) {
        let metrics = &self.inner.metrics;
        let Some(session) = self.session_for(sessions, received) else {
            return metrics.udp_dropped(UdpDrop::NoSession);
        };
        // Never wait on one flow: a full buffer drops the datagram, as the network would.
        match session.send(payload) {
            Ok(()) => {
                session.activity.touch();
                Metrics::add(&metrics.bytes_client_to_upstream, payload.len() as u64);
                Metrics::add(&session.counters.bytes_to_upstream, payload.len() as u64);
            }
            Err(reason) => metrics.udp_dropped(reason),
        }
    }

    fn session_for(&self, sessions: &Sessions, received: Received) -> Option<Arc<Session>> {
        let key = (received.client, received.original_dst);
        let mut table = sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = table.get(&key) {
            return Some(Arc::clone(session));
        }
        let (session, channel) = session::open(self, received)?;
        let session = Arc::new(session);
        // A full table makes room by ending its least recently active flows (their tasks
        // stop and free their sockets), so a flood of new source ports cannot lock out the
        // next client until idle flows expire.
        let evicted = table.insert(key, Arc::clone(&session));
        drop(table);
        for (flow, old) in evicted {
            old.close();
            Metrics::inc(&self.inner.metrics.udp_sessions_evicted);
            tracing::debug!(client = %flow.0, service = %flow.1, "UDP session table full: evicted the least recently active flow");
        }
        session::spawn_replies(
            self.clone(),
            Arc::clone(sessions),
            key,
            Arc::clone(&session),
            channel,
        );
        Some(session)
    }
}
