//! Listeners: plain HTTP for node components, HTTPS (reloading certificate) for pods. Every
//! connection is HTTP/1.1 with upgrades enabled (exec, attach, port-forward pass through).
//!
//! Clients that connect and send nothing, or send their headers a byte at a time (slow-loris),
//! must not lock the others out: such a connection is closed after [`HEADER_READ_TIMEOUT`], and
//! when file descriptors run short or too many connections are still waiting for their first
//! request, the oldest of those is closed first ([`Pending`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

use crate::client::Front;
use crate::proxy;
use crate::state::State;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers, and how long a kept-alive connection
/// may sit idle before its next request. Watches and other long answers are not affected: the
/// limit ends once a request's headers are in.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections still waiting for their first request beyond which the oldest is closed. Real
/// clients send their request within milliseconds of connecting.
const MAX_PENDING: usize = 256;
/// `accept` failures that mean "out of file descriptors" (EMFILE, ENFILE on Linux).
const FD_EXHAUSTION: [i32; 2] = [24, 23];

pub async fn serve_plain(listener: TcpListener, state: Arc<State>) {
    let pending = Pending::default();
    loop {
        let Some(stream) = accept(&listener, &pending).await else {
            continue;
        };
        let state = Arc::clone(&state);
        pending.spawn(move |first_request| {
            serve_connection(stream, state, Front::Node, first_request)
        });
    }
}

pub async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    let pending = Pending::default();
    loop {
        let Some(stream) = accept(&listener, &pending).await else {
            continue;
        };
        let (state, acceptor) = (Arc::clone(&state), acceptor.clone());
        pending.spawn(move |first_request| async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_connection(tls, state, Front::Pod, first_request).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}

async fn accept(listener: &TcpListener, pending: &Pending) -> Option<TcpStream> {
    match listener.accept().await {
        Ok((stream, _)) => {
            let _ = stream.set_nodelay(true);
            if pending.len() >= MAX_PENDING {
                pending.close_oldest();
            }
            Some(stream)
        }
        Err(e) if e.raw_os_error().is_some_and(|c| FD_EXHAUSTION.contains(&c)) => {
            // Make room by closing the connection that has waited longest without a request;
            // with none to close, back off instead of spinning.
            if !pending.close_oldest() {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

async fn serve_connection<S>(
    stream: S,
    state: Arc<State>,
    front: Front,
    first_request: FirstRequest,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        first_request.seen();
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(proxy::handle(state, front, request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// The connections of one listener that have not yet sent a complete request, oldest first.
#[derive(Clone, Default)]
struct Pending {
    inner: Arc<PendingInner>,
}

#[derive(Default)]
struct PendingInner {
    next_id: AtomicU64,
    queue: Mutex<VecDeque<Entry>>,
}

struct Entry {
    id: u64,
    task: Option<AbortHandle>,
    first_request: Arc<AtomicBool>,
}

/// Set by a connection's first request: from then on it is a client, not a suspect.
#[derive(Clone)]
struct FirstRequest(Arc<AtomicBool>);

impl FirstRequest {
    fn seen(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Pending {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serves one connection on a task of its own, registered until its first request (or its
    /// end), so that it can be closed to make room.
    fn spawn<F, Fut>(&self, serve: F)
    where
        F: FnOnce(FirstRequest) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (id, first_request) = self.enter();
        let served = serve(first_request);
        let pending = self.clone();
        let task = tokio::spawn(async move {
            served.await;
            pending.leave(id);
        });
        self.track(id, task.abort_handle());
    }

    /// Registers a new connection (its task is attached by [`Pending::track`]).
    fn enter(&self) -> (u64, FirstRequest) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let first_request = Arc::new(AtomicBool::new(false));
        self.queue().push_back(Entry {
            id,
            task: None,
            first_request: Arc::clone(&first_request),
        });
        (id, FirstRequest(first_request))
    }

    fn track(&self, id: u64, task: AbortHandle) {
        if let Some(entry) = self.queue().iter_mut().find(|e| e.id == id) {
            entry.task = Some(task);
        }
    }

    /// The connection ended.
    fn leave(&self, id: u64) {
        self.queue().retain(|e| e.id != id);
    }

    /// Connections still waiting for a first request.
    fn len(&self) -> usize {
        let mut queue = self.queue();
        queue.retain(|e| !e.first_request.load(Ordering::Relaxed));
        queue.len()
    }

    /// Closes the oldest connection without a request yet; false when there is none.
    fn close_oldest(&self) -> bool {
        let mut queue = self.queue();
        queue.retain(|e| !e.first_request.load(Ordering::Relaxed));
        while let Some(entry) = queue.pop_front() {
            if let Some(task) = entry.task.filter(|t| !t.is_finished()) {
                task.abort();
                tracing::debug!("closed a connection that sent no request, to make room");
                return true;
            }
        }
        false
    }
}
