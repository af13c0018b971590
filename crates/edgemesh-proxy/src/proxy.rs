//! The TCP side: one transparent listener for every service. Each accepted connection goes
//! accept → original destination → route → (read the HTTP head if the policy needs it) →
//! balance + dial → relay.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_lb::Balancer;
use edgemesh_model::{Frontend, Protocol, Service, SnapshotCell};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

use crate::classify::{foreign_backends, hash_header};
use crate::config::ProxyConfig;
use crate::connect::{Client, DialLimits, Target, dial_any};
use crate::dialer::{Dialer, Upstream};
use crate::http_head::{Head, read_head};
use crate::metrics::{ActiveGuard, Metrics};
use crate::origdst::{OriginalDst, SoOriginalDst};
use crate::relay::{relay, reset};
use crate::service_metrics::ServiceCounters;

/// The userspace proxy; cheap to clone (all clones share state and metrics).
#[derive(Clone)]
pub struct Proxy {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ProxyConfig,
    pub(crate) snapshots: Arc<SnapshotCell>,
    pub(crate) balancer: Arc<dyn Balancer>,
    pub(crate) dialer: Arc<dyn Dialer>,
    original_dst: Arc<dyn OriginalDst>,
    pub(crate) metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Where a connection goes: the frontend that serves it (for a node port, the node-port
/// frontend rather than the `nodeIP:nodePort` the client dialed: balancer state is kept per
/// frontend), the service and the index of its port.
pub(crate) struct Routed {
    pub(crate) frontend: Frontend,
    pub(crate) service: Arc<Service>,
    pub(crate) index: usize,
    /// The service's own counters (connections, errors, bytes).
    pub(crate) counters: Arc<ServiceCounters>,
}

/// Pause after an accept error such as EMFILE, so a full fd table does not spin a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

impl Proxy {
    pub fn new(
        config: ProxyConfig,
        snapshots: Arc<SnapshotCell>,
        balancer: Arc<dyn Balancer>,
        dialer: Arc<dyn Dialer>,
    ) -> Self {
        Self::with_original_dst(config, snapshots, balancer, dialer, Arc::new(SoOriginalDst))
    }

    /// Like [`Proxy::new`] with another source of original destinations (tests).
    pub fn with_original_dst(
        config: ProxyConfig,
        snapshots: Arc<SnapshotCell>,
        balancer: Arc<dyn Balancer>,
        dialer: Arc<dyn Dialer>,
        original_dst: Arc<dyn OriginalDst>,
    ) -> Self {
        let inner = Inner {
            config,
            snapshots,
            balancer,
            dialer,
            original_dst,
            metrics: Arc::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Accepts forever on the transparent listener; each connection runs in its own task.
    pub async fn serve_tcp(&self, listener: TcpListener) -> io::Result<()> {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    if edgemesh_host::fd_in_reserve(stream.as_fd()) {
                        self.refuse_for_reserve(&stream, peer);
                        continue;
                    }
                    let proxy = self.clone();
                    let span = tracing::debug_span!("tcp", %peer);
                    tokio::spawn(proxy.handle_conn(stream, peer).instrument(span));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            }
        }
    }

    async fn handle_conn(self, mut client: TcpStream, peer: SocketAddr) {
        let inner = &*self.inner;
        Metrics::inc(&inner.metrics.accepted);
        let _active = ActiveGuard::new(&inner.metrics.active);
        let Some(frontend) = self.frontend_of(&client, peer) else {
            return reset(&client);
        };
        let Some(routed) = self.route(&frontend) else {
            return reset(&client);
        };
        let (service, port_index) = (&routed.service, routed.index);
        let port = &service.ports[port_index];
        let head = self
            .read_head_if_needed(&mut client, service, port_index)
            .await;
        let foreign = self.foreign_backends(&routed);
        let target = Target {
            frontend: &routed.frontend,
            service,
            port,
            foreign: &foreign,
        };
        let who = Client {
            ip: peer.ip().to_canonical(),
            http_header: head.value.as_deref(),
        };
        let limits = DialLimits {
            attempts: inner.config.max_dial_attempts,
            timeout: inner.config.connect_timeout,
        };
        let dial = dial_any(
            target,
            who,
            &*inner.balancer,
            &*inner.dialer,
            limits,
            &inner.metrics,
        );
        let connected = match dial.await {
            Ok(connected) => connected,
            Err(crate::ProxyError::DescriptorReserve(_)) => {
                return self.refuse_for_reserve(&client, peer);
            }
            Err(error) => {
                Metrics::inc(&routed.counters.errors);
                self.count_dial_error(&error);
                tracing::info!(%error, "resetting client");
                return reset(&client);
            }
        };
        tracing::debug!(backend = %connected.picked.backend.addr, service = %service.key(), "relaying");
        if let Some(keepalive) = inner.config.tcp_keepalive {
            // A tunnel stream has the tunnel's own liveness checks; a socket needs the kernel's.
            let upstream = match &connected.upstream {
                Upstream::Tcp(socket) => Some(socket),
                Upstream::Stream(_) => None,
            };
            for socket in std::iter::once(&client).chain(upstream) {
                if let Err(error) = edgemesh_host::keep_alive(socket, keepalive) {
                    tracing::debug!(%error, "TCP keepalive not set");
                }
            }
        }
        let (mode, idle) = (inner.config.relay, inner.config.tcp_idle_timeout);
        let result = relay(
            client,
            &head.bytes,
            connected.upstream,
            mode,
            idle,
            (&inner.metrics, &routed.counters),
        )
        .await;
        tracing::debug!(?result, "connection closed");
    }

    fn frontend_of(&self, client: &TcpStream, peer: SocketAddr) -> Option<Frontend> {
        match self.inner.original_dst.original_dst(client) {
            Ok(dst) => Some(Frontend {
                ip: dst.ip().to_canonical(),
                port: dst.port(),
                protocol: Protocol::Tcp,
            }),
            Err(source) => {
                let error = crate::ProxyError::OriginalDst {
                    peer,
                    error: source,
                };
                tracing::warn!(%error);
                None
            }
        }
    }

    /// The service and port a connection to `dst` is for. Only the service is kept, not the
    /// whole Snapshot, so long connections do not pin old snapshots in memory.
    pub(crate) fn route(&self, dst: &Frontend) -> Option<Routed> {
        let snapshot = self.inner.snapshots.load();
        let routed = snapshot.resolve(dst).and_then(|frontend| {
            let (service, port) = snapshot.route(&frontend)?;
            let index = service.ports.iter().position(|p| std::ptr::eq(p, port))?;
            let counters = self.inner.metrics.services.of(service.key(), &snapshot);
            Metrics::inc(&counters.connections);
            Some(Routed {
                frontend,
                service: Arc::clone(service),
                index,
                counters,
            })
        });
        let counter = match routed {
            Some(_) => &self.inner.metrics.routed,
            None => &self.inner.metrics.no_route,
        };
        Metrics::inc(counter);
        routed
    }

    /// Backends the routed connection must not use (`externalTrafficPolicy: Local`).
    pub(crate) fn foreign_backends(&self, routed: &Routed) -> Vec<SocketAddr> {
        let local_node = self.inner.config.local_node.as_deref();
        let port = &routed.service.ports[routed.index];
        foreign_backends(&routed.service, port, &routed.frontend, local_node)
    }

    async fn read_head_if_needed(
        &self,
        client: &mut TcpStream,
        service: &Service,
        port_index: usize,
    ) -> Head {
        match hash_header(service, &service.ports[port_index]) {
            Some(name) => read_head(client, name, self.inner.config.http_head).await,
            None => Head::default(),
        }
    }

    /// Resets a client whose connection would take a descriptor from the reserve kept for the
    /// rest of the process (the admin endpoint, the manifests watcher, DNS, the tunnel).
    fn refuse_for_reserve(&self, client: &TcpStream, peer: SocketAddr) {
        Metrics::inc(&self.inner.metrics.fd_reserve_refused);
        tracing::debug!(%peer, "descriptor reserve reached: connection refused");
        reset(client);
    }

    fn count_dial_error(&self, error: &crate::ProxyError) {
        if matches!(error, crate::ProxyError::NoEndpoint(_)) {
            Metrics::inc(&self.inner.metrics.no_endpoint);
        }
    }
}
