//! A cached agent's get/list/discovery answer on its way from the upstream to the client and the
//! cache.
//!
//! Small answers (the usual case) are read whole before the client sees a byte, so an upstream
//! that stalls, fails or goes away mid-answer still gives the client a clean 5xx. An answer past
//! [`crate::config::AnswerLimits::buffered`] is streamed on as it comes, so the hub never holds a huge list twice
//! (a 400 MB list once cost 1.46 GB); the cache keeps its own copy only up to
//! [`crate::config::AnswerLimits::cached`] and a bigger answer is passed on without being cached. A stream that
//! breaks after the client got its first bytes ends with an error, never a clean end, so a
//! truncated list cannot look complete.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Body as _, Frame, Incoming};

use crate::state::State;
use crate::upstream::{Body, BoxError};

/// Why an answer could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("the upstream sent no part of its answer for {0:?}")]
    Stalled(Duration),
    #[error("the cloud became unreachable while the answer was being read")]
    Offline,
    #[error("reading the upstream response failed: {error}")]
    Read { error: hyper::Error },
}

impl AnswerError {
    /// The reply a client gets when the answer broke before it saw any of it.
    fn reply(&self) -> Response<Body> {
        let (code, reason) = match self {
            Self::Stalled(_) => (StatusCode::GATEWAY_TIMEOUT, "Timeout"),
            Self::Offline => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            Self::Read { .. } => (StatusCode::BAD_GATEWAY, "BadGateway"),
        };
        crate::response::reply(code, reason, &format!("edge hub: {self}"))
    }
}

/// Reads the upstream body chunk by chunk, giving up on a stall or when the hub goes offline.
struct Reader {
    body: Incoming,
    state: Arc<State>,
}

impl Reader {
    /// The next data chunk, `None` at the end.
    async fn next(&mut self) -> Result<Option<Bytes>, AnswerError> {
        let stall = self.state.body_stall_timeout;
        loop {
            let frame = tokio::select! {
                frame = tokio::time::timeout(stall, self.body.frame()) => frame,
                () = self.state.health.offline() => return Err(AnswerError::Offline),
            };
            match frame {
                Err(_) => return Err(AnswerError::Stalled(stall)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(error))) => return Err(AnswerError::Read { error }),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// The copy kept for the cache, dropped once the answer outgrows [`crate::config::AnswerLimits::cached`].
struct Kept {
    bytes: Option<BytesMut>,
    limit: usize,
    path: String,
}

impl Kept {
    fn push(&mut self, data: &[u8]) {
        let Some(bytes) = &mut self.bytes else { return };
        if bytes.len() + data.len() > self.limit {
            tracing::warn!(
                path = %self.path,
                limit.bytes = self.limit,
                "answer too big to cache: passed on, not stored"
            );
            self.bytes = None;
        } else {
            bytes.extend_from_slice(data);
        }
    }

    /// Hands the whole answer to `store` off the async threads, unless it was too big to keep.
    fn store_with(self, store: impl FnOnce(Bytes) + Send + 'static) {
        if let Some(bytes) = self.bytes {
            tokio::task::spawn_blocking(move || store(bytes.freeze()));
        }
    }
}

/// Passes the answer on and hands the whole of it to `store` (off the async threads) once it
/// ended well and was not too big to keep.
pub async fn pass_and_store<F>(
    state: &Arc<State>,
    path: &str,
    response: Response<Incoming>,
    store: F,
) -> Response<Body>
where
    F: FnOnce(Bytes) + Send + 'static,
{
    let (parts, body) = response.into_parts();
    let mut reader = Reader {
        body,
        state: Arc::clone(state),
    };
    let limits = state.answer_limits;
    let mut head = BytesMut::new();
    while head.len() <= limits.buffered {
        match reader.next().await {
            Err(e) => return e.reply(),
            Ok(Some(data)) => head.extend_from_slice(&data),
            Ok(None) => {
                let whole = head.freeze();
                let stored = whole.clone();
                tokio::task::spawn_blocking(move || store(stored));
                let body = Full::new(whole).map_err(|never| match never {});
                return Response::from_parts(parts, body.boxed_unsync());
            }
        }
    }
    let mut kept = Kept {
        bytes: Some(BytesMut::new()),
        limit: limits.cached,
        path: path.to_string(),
    };
    kept.push(&head);
    let first = futures::stream::once(async move { Ok(Frame::data(head.freeze())) });
    let rest = futures::stream::unfold(Some((reader, kept, store)), |streaming| async move {
        let (mut reader, mut kept, store) = streaming?;
        match reader.next().await {
            // With a known length the client may have its last byte before the body is
            // polled again: store as soon as the last chunk is in.
            Ok(Some(data)) if reader.body.is_end_stream() => {
                kept.push(&data);
                kept.store_with(store);
                Some((Ok(Frame::data(data)), None))
            }
            Ok(Some(data)) => {
                kept.push(&data);
                Some((Ok(Frame::data(data)), Some((reader, kept, store))))
            }
            Ok(None) => {
                kept.store_with(store);
                None
            }
            Err(e) => {
                tracing::warn!(path = %kept.path, error = %e, "answer cut while streaming");
                Some((Err(Box::new(e) as BoxError), None))
            }
        }
    });
    Response::from_parts(parts, StreamBody::new(first.chain(rest)).boxed_unsync())
}
