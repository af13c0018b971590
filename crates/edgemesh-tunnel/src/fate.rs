//! Telling a tunnel stream's clean end from the loss of its connection.
//!
//! yamux reports a stream whose connection died (the remote agent killed, the path cut, the
//! connection closed under it) as a plain end of stream, exactly like the remote's clean close
//! (`yamux::Stream::poll_read`: "stream has been reset" → `Ok(0)`). The copier would pass that
//! end on as a FIN, and a truncated download would look complete. So every connection carries a
//! [`Fate`]: marked lost by the socket under yamux as soon as that socket ends or fails (before
//! yamux sees it, hence before any stream can read its end), by a muxer error, by closing the
//! connection, or by dropping it; a stream ([`FateStream`]) whose end of stream is read once its
//! connection is lost reports `ConnectionReset` instead, which the copier's callers turn into a
//! reset of the TCP connection on their side. A clean end (the remote's FIN on a live
//! connection) stays an end of stream.
//!
//! QUIC streams report a lost connection as an error by themselves; they are wrapped too, so
//! that both transports behave alike.
//!
//! yamux's orderly close (ours, of a connection declared dead: `driver/liveness.rs`) neither
//! ends nor wakes the streams waiting to read or for send credit: they would wait forever. So a
//! stream poll left pending registers its waker with the [`Fate`], which wakes them all when the
//! connection is lost, and a pending poll on a lost connection fails with `ConnectionReset`.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt as _};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::{Multiaddr, PeerId, yamux};

/// Whether a connection has been lost (shared by the connection, its socket and its streams),
/// and when its socket last brought bytes.
#[derive(Debug)]
pub(crate) struct Fate {
    lost: AtomicBool,
    /// The wakers of stream polls left pending, by [`FateStream::key`] and direction.
    waiting: Mutex<HashMap<u64, Waker>>,
    /// The key of the next stream.
    next_key: AtomicU64,
    born: Instant,
    /// When the socket under yamux last read bytes, in ms since `born`: any frame from the peer
    /// (data, a window update, a pong) shows it alive, also when pings queue behind bulk data.
    heard_ms: AtomicU64,
}

impl Default for Fate {
    fn default() -> Self {
        Fate {
            lost: AtomicBool::new(false),
            waiting: Mutex::default(),
            next_key: AtomicU64::new(0),
            born: Instant::now(),
            heard_ms: AtomicU64::new(0),
        }
    }
}

impl Fate {
    /// When the peer was last heard on this connection's socket (its opening, for QUIC).
    pub(crate) fn heard_at(&self) -> Instant {
        self.born + Duration::from_millis(self.heard_ms.load(Ordering::Relaxed))
    }

    fn heard(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *self.waiting());
        for waker in waiting.into_values() {
            waker.wake();
        }
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waker>> {
        // A panic while holding it leaves a map of wakers, still valid.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes `waker` when the connection is lost; whether it already is (checked after the
    /// registration, so that a loss in between is not missed).
    fn wake_on_loss(&self, key: u64, waker: &Waker) -> bool {
        {
            let mut waiting = self.waiting();
            // The same task polls a stream over and over: keep its waker, no clone each time.
            if !waiting.get(&key).is_some_and(|w| w.will_wake(waker)) {
                waiting.insert(key, waker.clone());
            }
        }
        self.lost()
    }

    fn forget(&self, keys: [u64; 2]) {
        let mut waiting = self.waiting();
        for key in keys {
            waiting.remove(&key);
        }
    }
}

/// A poll of a stream that is `Pending`: stays so while the connection lives (woken on its
/// loss), fails once it is lost.
fn pending_unless_lost<T>(fate: &Fate, key: u64, cx: &Context<'_>) -> Poll<io::Result<T>> {
    match fate.wake_on_loss(key, cx.waker()) {
        true => Poll::Ready(Err(lost_error())),
        false => Poll::Pending,
    }
}

/// The error a stream reads instead of its end once its connection is lost.
fn lost_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "the tunnel connection carrying the stream was lost",
    )
}

/// The (secured) socket under yamux: its end or failure marks the connection lost before yamux
/// learns of it.
#[derive(Debug)]
pub(crate) struct FateSocket<S> {
    inner: S,
    fate: Arc<Fate>,
}

impl<S: AsyncRead + Unpin> AsyncRead for FateSocket<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let read = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        match read {
            Ok(n) if n > 0 => self.fate.heard(),
            _ if buf.is_empty() => {}
            _ => self.fate.lose(),
        }
        Poll::Ready(read)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FateSocket<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        if written.is_err() {
            self.fate.lose();
        }
        Poll::Ready(written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        if flushed.is_err() {
            self.fate.lose();
        }
        Poll::Ready(flushed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection is being closed: whatever stream is still open on it is cut.
        self.fate.lose();
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// yamux, on a [`FateSocket`], giving a [`FateMuxer`]: the same protocol on the wire.
#[derive(Clone)]
pub(crate) struct FatedYamux(pub yamux::Config);

impl UpgradeInfo for FatedYamux {
    type Info = <yamux::Config as UpgradeInfo>::Info;
    type InfoIter = <yamux::Config as UpgradeInfo>::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.protocol_info()
    }
}

type FatedMuxer<C> = FateMuxer<yamux::Muxer<FateSocket<C>>>;

/// Puts `socket` under a fresh [`Fate`] and runs yamux's upgrade (`upgrade`, either direction)
/// on it; the muxer it gives shares that fate.
fn fated<C, F>(
    socket: C,
    upgrade: impl FnOnce(FateSocket<C>) -> F,
) -> BoxFuture<'static, io::Result<FatedMuxer<C>>>
where
    F: Future<Output = io::Result<yamux::Muxer<FateSocket<C>>>> + Send + 'static,
{
    let fate = Arc::new(Fate::default());
    let socket = FateSocket {
        inner: socket,
        fate: Arc::clone(&fate),
    };
    let muxer = upgrade(socket);
    async move { Ok(FateMuxer::new(muxer.await?, fate)) }.boxed()
}

impl<C> InboundConnectionUpgrade<C> for FatedYamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = FatedMuxer<C>;
    type Error = io::Error;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, socket: C, info: Self::Info) -> Self::Future {
        fated(socket, |socket| self.0.upgrade_inbound(socket, info))
    }
}

impl<C> OutboundConnectionUpgrade<C> for FatedYamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = FatedMuxer<C>;
    type Error = io::Error;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, socket: C, info: Self::Info) -> Self::Future {
        fated(socket, |socket| self.0.upgrade_outbound(socket, info))
    }
}

/// The fates of connections being established, until the driver picks each up by its peer
/// and remote address (what `SwarmEvent::ConnectionEstablished` names it by).
#[derive(Clone, Debug, Default)]
pub(crate) struct Fates(Arc<Mutex<FateMap>>);

type FateMap = HashMap<(PeerId, Multiaddr), Weak<Fate>>;

impl Fates {
    fn map(&self) -> std::sync::MutexGuard<'_, FateMap> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection to `peer` at `remote` has come up with `fate`; the fates of connections
    /// that went before the driver saw them (refused ones) are dropped.
    pub(crate) fn register(&self, peer: PeerId, remote: &Multiaddr, fate: &Arc<Fate>) {
        let mut map = self.map();
        map.retain(|_, f| f.strong_count() > 0);
        map.insert((peer, remote.clone()), Arc::downgrade(fate));
    }

    /// The fate of the connection to `peer` at `remote`, once.
    pub(crate) fn take(&self, peer: PeerId, remote: &Multiaddr) -> Option<Arc<Fate>> {
        self.map().remove(&(peer, remote.clone()))?.upgrade()
    }
}

/// How long an orderly close of a connection may take before the connection is just dropped.
/// libp2p waits for the close without a bound, and until it ends the connection stays on the
/// peer's list (new streams may be put on it): the close of a connection whose peer went
/// silent (`driver/liveness.rs`) with unsent data queued would wait out TCP's retransmissions.
const CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// A muxer whose streams learn of the connection's loss ([`FateStream`]).
#[derive(Debug)]
pub(crate) struct FateMuxer<M> {
    inner: M,
    fate: Arc<Fate>,
    /// When [`CLOSE_WITHIN`] is up, once a close has begun.
    close_by: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<M> FateMuxer<M> {
    pub(crate) fn new(inner: M, fate: Arc<Fate>) -> Self {
        Self {
            inner,
            fate,
            close_by: None,
        }
    }

    /// A muxer with its own fate (no socket under it to watch: QUIC).
    pub(crate) fn watching(inner: M) -> Self {
        Self::new(inner, Arc::default())
    }

    pub(crate) fn fate(&self) -> &Arc<Fate> {
        &self.fate
    }

    fn stream<S>(&self, inner: S) -> FateStream<S> {
        FateStream {
            inner,
            key: self.fate.next_key.fetch_add(2, Ordering::Relaxed),
            fate: Arc::clone(&self.fate),
        }
    }

    fn lost_on_error<T, E>(&self, polled: Poll<Result<T, E>>) -> Poll<Result<T, E>> {
        if let Poll::Ready(Err(_)) = &polled {
            self.fate.lose();
        }
        polled
    }
}

impl<M> Drop for FateMuxer<M> {
    /// Runs before the inner muxer is dropped, which ends the streams still open.
    fn drop(&mut self) {
        self.fate.lose();
    }
}

impl<M> StreamMuxer for FateMuxer<M>
where
    M: StreamMuxer + Unpin,
    M::Substream: Unpin,
{
    type Substream = FateStream<M::Substream>;
    type Error = M::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_inbound(cx);
        this.lost_on_error(polled).map_ok(|s| this.stream(s))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_outbound(cx);
        this.lost_on_error(polled).map_ok(|s| this.stream(s))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        this.fate.lose();
        if let Poll::Ready(closed) = Pin::new(&mut this.inner).poll_close(cx) {
            return Poll::Ready(closed);
        }
        // Outside a tokio runtime (never in the swarm), the close is left unbounded.
        if this.close_by.is_none() && tokio::runtime::Handle::try_current().is_ok() {
            this.close_by = Some(Box::pin(tokio::time::sleep(CLOSE_WITHIN)));
        }
        let Some(deadline) = this.close_by.as_mut() else {
            return Poll::Pending;
        };
        ready!(deadline.poll_unpin(cx));
        tracing::debug!(within = ?CLOSE_WITHIN, "connection did not close in time: dropping it");
        Poll::Ready(Ok(()))
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll(cx);
        this.lost_on_error(polled)
    }
}

/// A stream that reads `ConnectionReset`, not its end, once its connection is lost, and whose
/// pending reads and writes then fail too.
#[derive(Debug)]
pub(crate) struct FateStream<S> {
    inner: S,
    fate: Arc<Fate>,
    /// Its wakers' keys in the fate: `key` for reads, `key + 1` for writes.
    key: u64,
}

impl<S> Drop for FateStream<S> {
    fn drop(&mut self) {
        self.fate.forget([self.key, self.key + 1]);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FateStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let Poll::Ready(read) = Pin::new(&mut self.inner).poll_read(cx, buf) else {
            return pending_unless_lost(&self.fate, self.key, cx);
        };
        if matches!(read, Ok(0)) && !buf.is_empty() && self.fate.lost() {
            return Poll::Ready(Err(lost_error()));
        }
        Poll::Ready(read)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FateStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(written) => Poll::Ready(written),
            Poll::Pending => pending_unless_lost(&self.fate, self.key + 1, cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::{ArcWake, waker};
    use std::sync::atomic::AtomicUsize;

    /// A stream whose connection says nothing more, as yamux's after its orderly close.
    struct Silent;

    impl AsyncRead for Silent {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Silent {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl ArcWake for Wakes {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn pending_polls_are_woken_and_fail_when_the_connection_is_lost() {
        let muxer = FateMuxer::watching(());
        let mut stream = muxer.stream(Silent);
        let wakes = Arc::new(Wakes::default());
        let waker = waker(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 8];
        assert!(
            Pin::new(&mut stream)
                .poll_read(&mut cx, &mut buf)
                .is_pending()
        );
        assert!(Pin::new(&mut stream).poll_write(&mut cx, b"x").is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        drop(muxer);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2, "reader and writer woken");
        let read = Pin::new(&mut stream).poll_read(&mut cx, &mut buf);
        assert!(matches!(read, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset));
        let written = Pin::new(&mut stream).poll_write(&mut cx, b"x");
        assert!(
            matches!(written, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset)
        );
        drop(stream);
    }
}
