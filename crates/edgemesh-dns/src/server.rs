//! Sockets: bind exactly the configured addresses (UDP and TCP), then run hickory's `Server`
//! with our handler until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use edgemesh_host::SocketFactory;
use edgemesh_model::SnapshotCell;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tracing::info;

use crate::config::DnsConfig;
use crate::error::DnsError;
use crate::handler::DnsHandler;
use crate::metrics::DnsMetrics;
use crate::resolve::Resolver;

/// Size of the per-connection TCP response buffer handed to hickory.
const TCP_RESPONSE_BUFFER: usize = 32;

/// A bound, not yet running, DNS server.
#[derive(Debug)]
pub struct DnsServer {
    handler: DnsHandler,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    local: Vec<SocketAddr>,
    tcp_idle_timeout: std::time::Duration,
}

impl DnsServer {
    /// Validates `config` and binds every listen address. A port of 0 picks a free port that
    /// UDP and TCP then share (tests).
    pub async fn bind(
        config: &DnsConfig,
        snapshots: Arc<SnapshotCell>,
        metrics: Arc<DnsMetrics>,
    ) -> Result<Self, DnsError> {
        if config.listen.is_empty() {
            return Err(DnsError::NoListenAddress);
        }
        if let Some(wild) = config.listen.iter().find(|a| a.ip().is_unspecified()) {
            return Err(DnsError::WildcardListen(*wild));
        }
        let handler = DnsHandler::new(Resolver::new(config, snapshots, metrics)?)
            .for_clients(config.clients.clone(), &config.listen);
        let mut server = Self {
            handler,
            udp: Vec::new(),
            tcp: Vec::new(),
            local: Vec::new(),
            tcp_idle_timeout: config.tcp_idle_timeout,
        };
        for addr in &config.listen {
            let bind = |protocol, source| DnsError::Bind {
                protocol,
                addr: *addr,
                error: source,
            };
            let (udp, tcp) = bind_pair(&*config.sockets, *addr).map_err(|(p, e)| bind(p, e))?;
            let local = udp.local_addr().map_err(|e| bind("UDP", e))?;
            server.udp.push(udp);
            server.tcp.push(tcp);
            server.local.push(local);
        }
        Ok(server)
    }

    /// The addresses actually bound (UDP and TCP share each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    pub fn handler(&self) -> &DnsHandler {
        &self.handler
    }

    /// Serves until `shutdown` completes, then stops accepting and waits for the listeners.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), DnsError> {
        let mut server = Server::new(self.handler);
        for socket in self.udp {
            server.register_socket(socket);
        }
        for listener in self.tcp {
            server.register_listener(listener, self.tcp_idle_timeout, TCP_RESPONSE_BUFFER);
        }
        info!(listen = ?self.local, "DNS server running");
        let stopped = tokio::select! {
            result = server.block_until_done() => result,
            () = shutdown => server.shutdown_gracefully().await,
        };
        stopped.map_err(|e| DnsError::Server(e.to_string()))
    }
}

/// Binds and serves `config` until `shutdown` completes.
pub async fn serve(
    config: &DnsConfig,
    snapshots: Arc<SnapshotCell>,
    metrics: Arc<DnsMetrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DnsError> {
    DnsServer::bind(config, snapshots, metrics)
        .await?
        .run(shutdown)
        .await
}

/// Tries for a port free for both protocols when `addr` asks for any port (0).
const ANY_PORT_TRIES: usize = 16;

/// UDP and TCP on the same address. With port 0 the UDP socket picks the port, and a TCP socket
/// (another process's connection, say) may already use that port: then try another. The error
/// names the protocol that failed.
pub fn bind_pair(
    sockets: &dyn SocketFactory,
    addr: SocketAddr,
) -> Result<(UdpSocket, TcpListener), (&'static str, std::io::Error)> {
    let tries = if addr.port() == 0 { ANY_PORT_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = sockets.udp_bind(addr).map_err(|e| ("UDP", e))?;
        let local = udp.local_addr().map_err(|e| ("UDP", e))?;
        match sockets.tcp_bind(local) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(("TCP", e)),
        }
    }
    Err((
        "TCP",
        last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)),
    ))
}
