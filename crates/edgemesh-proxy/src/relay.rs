//! Moving bytes both ways between the client and the upstream until both directions are done,
//! with correct half-close (EOF on one side shuts down writing on the other while the opposite
//! direction keeps flowing) and an idle timeout that closes both sides.

mod activity;
mod copy;
mod splice;

use std::io;
use std::net::Shutdown;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub use activity::Activity;

use crate::config::RelayMode;
use crate::dialer::Upstream;
use crate::metrics::Metrics;

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both directions reached EOF.
    Done,
    /// Nothing moved for the idle timeout; both sides were closed.
    Idle,
}

/// Relays `client` ↔ `upstream`, sending `prefix` (bytes already read from the client) first.
/// On an I/O error both TCP sockets are reset, so each peer learns the other is gone.
pub async fn relay(
    mut client: TcpStream,
    prefix: &[u8],
    upstream: Upstream,
    mode: RelayMode,
    idle_timeout: Option<Duration>,
    metrics: &Metrics,
) -> io::Result<RelayEnd> {
    let activity = Activity::new();
    let moving = move_bytes(&mut client, prefix, upstream, mode, &activity, metrics);
    let result = match idle_timeout {
        None => moving.await,
        Some(idle) => tokio::select! {
            result = moving => result,
            () = activity.idle_for(idle) => Ok(RelayEnd::Idle),
        },
    };
    if result.is_err() {
        reset(&client);
    }
    if result.as_ref().is_ok_and(|end| *end == RelayEnd::Idle) {
        Metrics::inc(&metrics.idle_closed);
    }
    result
}

async fn move_bytes(
    client: &mut TcpStream,
    prefix: &[u8],
    upstream: Upstream,
    mode: RelayMode,
    activity: &Activity,
    metrics: &Metrics,
) -> io::Result<RelayEnd> {
    match (upstream, mode) {
        (Upstream::Tcp(mut up), RelayMode::Splice) => {
            up.write_all(prefix).await?;
            Metrics::add(&metrics.bytes_client_to_upstream, prefix.len() as u64);
            let result = splice::both_ways(client, &up, activity, metrics).await;
            if result.is_err() {
                reset(&up);
            }
            result
        }
        (Upstream::Tcp(up), RelayMode::Copy { buffer }) => {
            copy::both_ways(client, up, prefix, buffer, activity, metrics).await
        }
        (Upstream::Stream(up), mode) => {
            let buffer = match mode {
                RelayMode::Copy { buffer } => buffer,
                RelayMode::Splice => copy::DEFAULT_BUFFER,
            };
            copy::both_ways(client, up, prefix, buffer, activity, metrics).await
        }
    }
    .map(|_| RelayEnd::Done)
}

/// Makes the peer see a reset (RST) instead of an orderly close when the socket is dropped.
pub fn reset(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Half-closes `stream` for writing. A peer that already went away makes this fail; that is
/// not an error of the relay (the other direction reports it if it matters).
fn shutdown_write(stream: &TcpStream) {
    let _ = SockRef::from(stream).shutdown(Shutdown::Write);
}
