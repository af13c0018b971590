//! Moving bytes both ways between the client and the upstream with the one copier
//! (`edgemesh-copy`): for TCP upstreams the user-space copy while the traffic is messages and
//! splice(2) once it streams, unless configured otherwise; a user-space copy for tunnel streams;
//! half-close, the idle timeout and byte counting come with it.

use std::io;
use std::time::Duration;

use edgemesh_copy::{Direction, End, Meter, Options};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::RelayMode;
use crate::dialer::Upstream;
use crate::metrics::Metrics;
use crate::service_metrics::ServiceCounters;

/// Relays `client` ↔ `upstream`, sending `prefix` (bytes already read from the client) first.
/// When either side breaks (an I/O error; a tunnel stream whose connection was lost) both TCP
/// sockets are reset, so each peer learns of the break instead of seeing a clean end (FIN).
pub async fn relay(
    mut client: TcpStream,
    prefix: &[u8],
    upstream: Upstream,
    mode: RelayMode,
    idle_timeout: Option<Duration>,
    (metrics, service): (&Metrics, &ServiceCounters),
) -> io::Result<End> {
    let meter = Counted { metrics, service };
    let result = match (upstream, mode) {
        (Upstream::Tcp(mut up), mode @ (RelayMode::Splice | RelayMode::Adaptive)) => {
            let result = tcp_to_tcp(&mut client, &mut up, prefix, mode, idle_timeout, &meter).await;
            if result.is_err() {
                reset(&up);
            }
            result
        }
        (Upstream::Tcp(mut up), RelayMode::Copy { buffer }) => {
            copy(&mut client, &mut up, prefix, buffer, idle_timeout, &meter).await
        }
        (Upstream::Stream(mut up), mode) => {
            let buffer = match mode {
                RelayMode::Copy { buffer } => buffer,
                RelayMode::Splice | RelayMode::Adaptive => edgemesh_copy::DEFAULT_MAX_BUFFER,
            };
            copy(&mut client, &mut up, prefix, buffer, idle_timeout, &meter).await
        }
    };
    if result.is_err() {
        reset(&client);
    }
    if result.as_ref().is_ok_and(|end| *end == End::Idle) {
        Metrics::inc(&metrics.idle_closed);
    }
    result
}

/// Between two kernel sockets: splice all along, or the adaptive copy (messages in user space,
/// streams by splice).
async fn tcp_to_tcp(
    client: &mut TcpStream,
    up: &mut TcpStream,
    prefix: &[u8],
    mode: RelayMode,
    idle_timeout: Option<Duration>,
    meter: &Counted<'_>,
) -> io::Result<End> {
    send_prefix(up, prefix, meter).await?;
    let options = Options {
        idle_timeout,
        ..Options::default()
    };
    let copied = match mode {
        RelayMode::Splice => edgemesh_copy::splice_both_ways(client, up, meter, options).await,
        _ => edgemesh_copy::adaptive_both_ways(client, up, meter, options).await,
    };
    copied.map_err(io::Error::from)
}

/// The user-space copy, with buffers growing up to `max_buffer`.
async fn copy<U: AsyncRead + AsyncWrite + Unpin>(
    client: &mut TcpStream,
    upstream: &mut U,
    prefix: &[u8],
    max_buffer: usize,
    idle_timeout: Option<Duration>,
    meter: &Counted<'_>,
) -> io::Result<End> {
    send_prefix(upstream, prefix, meter).await?;
    let options = Options {
        idle_timeout,
        max_buffer,
    };
    edgemesh_copy::both_ways(client, upstream, meter, options)
        .await
        .map_err(io::Error::from)
}

async fn send_prefix<U: AsyncWrite + Unpin>(
    upstream: &mut U,
    prefix: &[u8],
    meter: &Counted<'_>,
) -> io::Result<()> {
    upstream.write_all(prefix).await?;
    meter.moved(Direction::AToB, prefix.len() as u64);
    Ok(())
}

/// The relay's copies run client (A) → upstream (B): their bytes land in the proxy's counters.
impl Meter for Metrics {
    fn moved(&self, direction: Direction, bytes: u64) {
        let counter = match direction {
            Direction::AToB => &self.bytes_client_to_upstream,
            Direction::BToA => &self.bytes_upstream_to_client,
        };
        Metrics::add(counter, bytes);
    }
}

/// Counts a connection's bytes both in the proxy's totals and in its service's counters.
struct Counted<'a> {
    metrics: &'a Metrics,
    service: &'a ServiceCounters,
}

impl Meter for Counted<'_> {
    fn moved(&self, direction: Direction, bytes: u64) {
        self.metrics.moved(direction, bytes);
        self.service.moved(direction, bytes);
    }
}

/// Makes the peer see a reset (RST) instead of an orderly close when the socket is dropped.
pub fn reset(stream: &TcpStream) {
    edgemesh_copy::reset_on_close(stream);
}
