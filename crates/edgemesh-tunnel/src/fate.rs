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

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt as _};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::yamux;

/// Whether a connection has been lost (shared by the connection, its socket and its streams).
#[derive(Debug, Default)]
pub(crate) struct Fate(AtomicBool);

impl Fate {
    fn lose(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn lost(&self) -> bool {
        self.0.load(Ordering::SeqCst)
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
        if matches!(read, Ok(0) | Err(_)) && !buf.is_empty() {
            self.fate.lose();
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

/// A muxer whose streams learn of the connection's loss ([`FateStream`]).
#[derive(Debug)]
pub(crate) struct FateMuxer<M> {
    inner: M,
    fate: Arc<Fate>,
}

impl<M> FateMuxer<M> {
    pub(crate) fn new(inner: M, fate: Arc<Fate>) -> Self {
        Self { inner, fate }
    }

    /// A muxer with its own fate (no socket under it to watch: QUIC).
    pub(crate) fn watching(inner: M) -> Self {
        Self::new(inner, Arc::default())
    }

    fn stream<S>(&self, inner: S) -> FateStream<S> {
        FateStream {
            inner,
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
        Pin::new(&mut this.inner).poll_close(cx)
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

/// A stream that reads `ConnectionReset`, not its end, once its connection is lost.
#[derive(Debug)]
pub(crate) struct FateStream<S> {
    inner: S,
    fate: Arc<Fate>,
}

impl<S: AsyncRead + Unpin> AsyncRead for FateStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let read = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
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
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
