//! One listening socket per (address, port) of the route table, opened and closed as the table
//! and the chosen addresses change; each accepted connection is served as its port's mode says
//! at that moment.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd as _;
use std::sync::Arc;

use edgemesh_host::{HostSockets, SocketFactory};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::Shared;
use crate::http::{self, Downstream};
use crate::table::PortMode;
use crate::tcp;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The open sockets, by address.
#[derive(Debug, Default)]
pub struct Listeners {
    open: BTreeMap<SocketAddr, JoinHandle<()>>,
    /// Sockets that could not be opened, with why (shown in `/debug/routes`).
    pub failed: BTreeMap<SocketAddr, String>,
}

impl Listeners {
    /// Opens a socket for every `address × port` not open yet and closes those no longer
    /// wanted (connections already accepted go on).
    pub fn reconcile(&mut self, addresses: &[IpAddr], ports: &[u16], shared: &Arc<Shared>) {
        let wanted: Vec<SocketAddr> = addresses
            .iter()
            .flat_map(|ip| ports.iter().map(|port| SocketAddr::new(*ip, *port)))
            .collect();
        self.open.retain(|addr, task| {
            let keep = wanted.contains(addr);
            if !keep {
                task.abort();
                tracing::info!(%addr, "gateway stopped listening");
            }
            keep
        });
        self.failed.retain(|addr, _| wanted.contains(addr));
        for addr in wanted {
            if self.open.contains_key(&addr) {
                continue;
            }
            match bind(addr) {
                Ok(listener) => {
                    tracing::info!(%addr, "gateway listening");
                    self.failed.remove(&addr);
                    let task = tokio::spawn(accept_loop(listener, addr.port(), Arc::clone(shared)));
                    self.open.insert(addr, task);
                }
                Err(error) => {
                    if !self.failed.contains_key(&addr) {
                        tracing::error!(%addr, %error, "gateway cannot listen (retried when the routes or addresses change)");
                    }
                    self.failed.insert(addr, error.to_string());
                }
            }
        }
    }

    pub fn addresses(&self) -> impl Iterator<Item = &SocketAddr> {
        self.open.keys()
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in self.open.values() {
            task.abort();
        }
    }
}

/// A listener from the host seam (`SO_REUSEADDR`, backlog 1,024). Listeners are plain in every
/// factory (a mark would be inherited by each accepted connection), so the default one serves;
/// [`serve`] sets `TCP_NODELAY` on each accepted connection.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    HostSockets::default().tcp_bind(addr)
}

async fn accept_loop(listener: TcpListener, port: u16, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            // A connection that would keep a descriptor from the reserve left to the admin
            // endpoint and the sources (`edgemesh_host::fd_in_reserve`) is closed at once.
            Ok((stream, client)) if edgemesh_host::fd_in_reserve(stream.as_fd()) => {
                tracing::debug!(port, %client, "descriptor reserve reached: connection closed");
            }
            Ok((stream, client)) => {
                tokio::spawn(serve(stream, client, port, Arc::clone(&shared)));
            }
            Err(error) => {
                // EMFILE and the like: wait instead of spinning.
                tracing::warn!(port, %error, "gateway accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream, client: SocketAddr, port: u16, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mode = shared.table.load().ports.get(&port).map(|p| p.mode.clone());
    let Some(mode) = mode else {
        return;
    };
    let down = |tls| Downstream { client, port, tls };
    match mode {
        PortMode::Http { tls: None, .. } => http::serve(stream, down(false), shared).await,
        PortMode::Http {
            tls: Some(config), ..
        } => {
            if let Some(tls) = handshake(stream, config, client).await {
                http::serve(tls, down(true), shared).await
            }
        }
        PortMode::Tcp { tls: None } => tcp::serve_tcp(stream, client, port, shared).await,
        PortMode::Tcp { tls: Some(config) } => {
            if let Some(tls) = handshake(stream, config, client).await {
                tcp::serve_tcp(tls, client, port, shared).await
            }
        }
        PortMode::Passthrough => tcp::serve_passthrough(stream, client, port, shared).await,
    }
}

async fn handshake(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    client: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accepting = TlsAcceptor::from(config).accept(stream);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accepting).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::info!(%client, %error, "TLS handshake refused");
            None
        }
        Err(_) => {
            tracing::info!(%client, "TLS handshake timed out");
            None
        }
    }
}
