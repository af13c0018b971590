//! The one byte copier of edgemesh: moves bytes both ways between two connections until both
//! directions have ended, passing each end of stream on as a half-close of the other side.
//!
//! Every byte path uses it: the proxy's relay, the tunnel's streams, SOCKS5 and the hub's
//! upgraded connections. Three ways to move the bytes:
//! - [`both_ways`], for any pair of byte streams: a user-space copy whose buffers start at 1 KiB
//!   and grow with traffic (see [`buffer`]), and are released while a direction waits for data,
//!   so an idle connection holds no buffer at all;
//! - [`splice_both_ways`], for two kernel TCP sockets: `splice(2)` through a pipe per direction,
//!   the bytes never enter user space;
//! - [`adaptive_both_ways`], for two kernel TCP sockets: the first while the traffic is
//!   messages, the second once a direction streams.
//!
//! Both report the bytes they move to a [`Meter`] the caller passes in and close both sides
//! when nothing moved for the idle timeout.
//!
//! A copy tells a side that *ended* (end of stream, passed on as a half-close: FIN) from a side
//! that *broke* (an I/O error on it: a reset, a tunnel stream whose connection was lost): the
//! latter stops the copy with [`Broke`], which names the side, and the caller closes the other
//! side abortively ([`reset_on_close`]: RST), so that a broken path never looks like a clean end
//! (a truncated download that seems complete).

mod activity;
mod buffer;
pub mod datagram;
mod half;
mod splice;

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub use activity::Activity;
pub use buffer::{DEFAULT_MAX_BUFFER, held_buffer_bytes};
pub use splice::splice_refused;

use half::Half;

/// Which way bytes moved: from the first connection passed in to the second, or back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    AToB,
    BToA,
}

/// Where a copy reports the bytes it moved (once they were written to the other side).
pub trait Meter: Sync {
    fn moved(&self, direction: Direction, bytes: u64);
}

/// Nothing to report to (the caller counts elsewhere, or not at all).
impl Meter for () {
    fn moved(&self, _: Direction, _: u64) {}
}

/// One of the two connections of a copy: the first passed in (`A`) or the second (`B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The other connection.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A copy stopped because one side broke: reading from it, writing to it or shutting it down
/// failed (reset, connection lost). Not an end of stream: the caller should make the *other*
/// side see a break too ([`reset_on_close`] before dropping a TCP socket).
#[derive(Debug, thiserror::Error)]
#[error("side {side:?} broke: {error}")]
pub struct Broke {
    pub side: Side,
    pub error: io::Error,
}

impl From<Broke> for io::Error {
    fn from(broke: Broke) -> io::Error {
        broke.error
    }
}

/// Makes the peer of `stream` see a reset (RST) instead of an orderly close (FIN) when the
/// socket is closed (`SO_LINGER` 0): what the other end of a broken copy is told.
pub fn reset_on_close(stream: &TcpStream) {
    // Fails only on a socket already gone, whose peer then learns nothing either way.
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// How a copy ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Both directions reached end of stream.
    Done,
    /// Nothing moved for the idle timeout; the copy stopped (the caller closes both sides).
    Idle,
}

/// What a copy may use and how long it may sit idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Nothing moving either way for this long ends the copy with [`End::Idle`].
    pub idle_timeout: Option<Duration>,
    /// Largest buffer one direction grows to (user-space copy only).
    pub max_buffer: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            idle_timeout: None,
            max_buffer: DEFAULT_MAX_BUFFER,
        }
    }
}

/// Copies `a` → `b` and `b` → `a` until both directions have reached end of stream (each end
/// is passed on as a shutdown of the other side's write half), a side broke ([`Broke`]), or the
/// idle timeout.
pub async fn both_ways<A, B, M>(
    a: &mut A,
    b: &mut B,
    meter: &M,
    options: Options,
) -> Result<End, Broke>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
    M: Meter + ?Sized,
{
    let activity = Activity::new();
    let touching = Touching {
        meter,
        activity: &activity,
    };
    let mut halves = Halves::new(options.max_buffer);
    let copying = poll_fn(|cx| halves.poll_copy(cx, &mut *a, &mut *b, &touching));
    until_idle(copying, &activity, options.idle_timeout).await
}

/// Splices both ways between two kernel TCP sockets: the bytes go socket → pipe → socket and
/// never enter user space. Half-close, errors and the idle timeout as in [`both_ways`]. When
/// the process cannot spare descriptors for the pipes (see [`adaptive_both_ways`]), the
/// connection is copied in user space instead.
pub async fn splice_both_ways<M: Meter + ?Sized>(
    a: &mut TcpStream,
    b: &mut TcpStream,
    meter: &M,
    options: Options,
) -> Result<End, Broke> {
    let Some(pipes) = splice::Pipes::new() else {
        return both_ways(a, b, meter, options).await;
    };
    let activity = Activity::new();
    let touching = Touching {
        meter,
        activity: &activity,
    };
    let splicing = splice::both_ways(a, b, pipes, &touching);
    until_idle(splicing, &activity, options.idle_timeout).await
}

/// Between two kernel TCP sockets: the user-space copy while the traffic is messages (a read
/// and a write per message cost less than splice's two pipe hops: 63k vs 55k round trips/s in
/// `cargo bench -p edgemesh-copy --bench copy`), then splice(2) once a direction streams
/// (its buffer grew to `options.max_buffer` on back-to-back full reads) and neither direction
/// holds a byte in user space, so nothing is lost or reordered by the switch. Half-close,
/// errors and the idle timeout as in [`both_ways`].
///
/// The move needs two pipes (four descriptors); when the process cannot spare them (out of
/// descriptors, or they would lie in the data path's reserve, `edgemesh_host::fd_in_reserve`)
/// the copy stays in user space for good ([`splice_refused`] counts it, as it counts
/// [`splice_both_ways`] falling back).
pub async fn adaptive_both_ways<M: Meter + ?Sized>(
    a: &mut TcpStream,
    b: &mut TcpStream,
    meter: &M,
    options: Options,
) -> Result<End, Broke> {
    let activity = Activity::new();
    let touching = Touching {
        meter,
        activity: &activity,
    };
    let mut halves = Halves::new(options.max_buffer);
    let mut may_splice = true;
    loop {
        let copying = poll_fn(
            |cx| match halves.poll_copy(cx, &mut *a, &mut *b, &touching) {
                Poll::Ready(ended) => Poll::Ready(ended.map(|()| Copied::Done)),
                Poll::Pending if may_splice && halves.ready_for_splice() => {
                    Poll::Ready(Ok(Copied::Streaming))
                }
                Poll::Pending => Poll::Pending,
            },
        );
        match unless_idle(copying, &activity, options.idle_timeout).await? {
            None => return Ok(End::Idle),
            Some(Copied::Done) => return Ok(End::Done),
            Some(Copied::Streaming) => match splice::Pipes::new() {
                Some(pipes) => {
                    MOVED_TO_SPLICE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let splicing = splice::both_ways(a, b, pipes, &touching);
                    return until_idle(splicing, &activity, options.idle_timeout).await;
                }
                None => may_splice = false,
            },
        }
    }
}

/// Copies of [`adaptive_both_ways`] that moved to splice, in this process.
static MOVED_TO_SPLICE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many [`adaptive_both_ways`] copies of this process found a streaming direction and
/// moved to splice(2).
pub fn moved_to_splice() -> u64 {
    MOVED_TO_SPLICE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Both directions of a user-space copy.
struct Halves {
    forward: Half,
    backward: Half,
}

impl Halves {
    fn new(max_buffer: usize) -> Self {
        Halves {
            forward: Half::new(Direction::AToB, max_buffer),
            backward: Half::new(Direction::BToA, max_buffer),
        }
    }

    /// Ready once both directions ended, or with the side that broke.
    fn poll_copy<A, B, M>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        a: &mut A,
        b: &mut B,
        meter: &M,
    ) -> Poll<Result<(), Broke>>
    where
        A: AsyncRead + AsyncWrite + Unpin + ?Sized,
        B: AsyncRead + AsyncWrite + Unpin + ?Sized,
        M: Meter + ?Sized,
    {
        let f = self
            .forward
            .poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b), meter);
        let r = self
            .backward
            .poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a), meter);
        match (f, r) {
            (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }

    /// A direction streams, and neither holds a byte in user space or has ended: the moment
    /// both can be handed to splice without losing or reordering anything.
    fn ready_for_splice(&self) -> bool {
        (self.forward.streaming() || self.backward.streaming())
            && self.forward.quiescent()
            && self.backward.quiescent()
    }
}

/// How the user-space phase of [`adaptive_both_ways`] ended.
enum Copied {
    Done,
    Streaming,
}

/// Runs `copying` to its end, or until nothing moved for `idle`.
async fn until_idle(
    copying: impl Future<Output = Result<(), Broke>>,
    activity: &Activity,
    idle: Option<Duration>,
) -> Result<End, Broke> {
    let ended = unless_idle(copying, activity, idle).await?;
    Ok(ended.map_or(End::Idle, |()| End::Done))
}

/// `copying`'s outcome, or `None` once nothing moved for `idle`.
async fn unless_idle<T>(
    copying: impl Future<Output = Result<T, Broke>>,
    activity: &Activity,
    idle: Option<Duration>,
) -> Result<Option<T>, Broke> {
    let Some(idle) = idle else {
        return copying.await.map(Some);
    };
    tokio::select! {
        result = copying => result.map(Some),
        () = activity.idle_for(idle) => Ok(None),
    }
}

/// The caller's meter, plus the activity clock the idle timeout reads.
struct Touching<'a, M: ?Sized> {
    meter: &'a M,
    activity: &'a Activity,
}

impl<M: Meter + ?Sized> Meter for Touching<'_, M> {
    fn moved(&self, direction: Direction, bytes: u64) {
        self.activity.touch();
        self.meter.moved(direction, bytes);
    }
}
