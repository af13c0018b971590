//! TCP and TLS-passthrough connections: routed once, then copied whole.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::Shared;
use crate::sni::{self, Peek};
use crate::table::L4Route;

/// How long a passthrough client may take to send its ClientHello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Routes a TCP connection (plain, or already terminated) by port.
pub async fn serve_tcp<IO>(io: IO, client: SocketAddr, port: u16, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let route = l4_route(&shared, port, None);
    match route {
        Some(route) => relay(io, Vec::new(), client, &route, &shared).await,
        None => tracing::debug!(%client, port, "no tcp route for this port; closing"),
    }
}

/// Reads the ClientHello's server name without terminating, routes by it and passes every byte
/// (the hello included) to the backend.
pub async fn serve_passthrough<IO>(mut io: IO, client: SocketAddr, port: u16, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, read_hello(&mut io)).await {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => {
            tracing::debug!(%client, port, %error, "passthrough: no ClientHello");
            return;
        }
        Err(_) => {
            tracing::debug!(%client, port, "passthrough: ClientHello timed out");
            return;
        }
    };
    let (bytes, name) = hello;
    let route = l4_route(&shared, port, name.as_deref());
    match route {
        Some(route) => relay(io, bytes, client, &route, &shared).await,
        None => {
            tracing::info!(%client, port, sni = name.as_deref().unwrap_or(""), "passthrough: no tls route for this server name; closing")
        }
    }
}

/// The current table's tcp or tls route on `port` for `sni`.
fn l4_route(shared: &Shared, port: u16, sni: Option<&str>) -> Option<Arc<L4Route>> {
    let table = shared.table.load();
    table.ports.get(&port)?.route_l4(sni).cloned()
}

/// The bytes read until the ClientHello was complete, and its server name.
async fn read_hello<IO: AsyncRead + Unpin>(
    io: &mut IO,
) -> std::io::Result<(Vec<u8>, Option<String>)> {
    let mut bytes = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        match sni::peek(&bytes) {
            Peek::Name(name) => return Ok((bytes, Some(name))),
            Peek::NoName => return Ok((bytes, None)),
            Peek::NotTls => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "not a TLS ClientHello",
                ));
            }
            Peek::NeedMore if bytes.len() >= sni::MAX_HELLO => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "ClientHello larger than the limit",
                ));
            }
            Peek::NeedMore => {}
        }
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

async fn relay<IO>(
    mut io: IO,
    already_read: Vec<u8>,
    client: SocketAddr,
    route: &L4Route,
    shared: &Shared,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let target = route.destinations.pick(rand::random::<u32>());
    shared
        .metrics
        .connections
        .get_or_create(&crate::metrics::RouteLabels {
            route: route.name.clone(),
        })
        .inc();
    let connected = match shared.backends.connect(target, client.ip(), None).await {
        Ok(connected) => connected,
        Err(error) => {
            shared.metrics.upstream_error(&route.name);
            tracing::warn!(route = %route.name, %client, %error, "tcp route: upstream unreachable");
            return;
        }
    };
    let mut upstream = connected.upstream.into_stream();
    if !already_read.is_empty()
        && let Err(error) = upstream.write_all(&already_read).await
    {
        tracing::debug!(route = %route.name, %error, "tcp route: upstream write failed");
        return;
    }
    let options = edgemesh_copy::Options::default();
    if let Err(broke) = edgemesh_copy::both_ways(&mut io, &mut upstream, &(), options).await {
        shared.metrics.upstream_error(&route.name);
        tracing::debug!(route = %route.name, error = %broke, "tcp route: connection broke");
    }
    drop(connected.picked);
}
