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

/// What is kept for the cache: the answer's chunks (shared with the client's frames, not
/// copied), dropped once the answer outgrows [`crate::config::AnswerLimits::cached`].
struct Kept {
    chunks: Option<Vec<Bytes>>,
    len: usize,
    limit: usize,
    path: String,
}

impl Kept {
    fn new(limit: usize, path: &str) -> Self {
        Self {
            chunks: Some(Vec::new()),
            len: 0,
            limit,
            path: path.to_string(),
        }
    }

    fn push(&mut self, data: Bytes) {
        let Some(chunks) = &mut self.chunks else {
            return;
        };
        self.len += data.len();
        if self.len > self.limit {
            tracing::warn!(
                path = %self.path,
                limit.bytes = self.limit,
                "answer too big to cache: passed on, not stored"
            );
            self.chunks = None;
        } else {
            chunks.push(data);
        }
    }

    /// Hands the whole answer to `store` off the async threads (joining its chunks there),
    /// unless it was too big to keep.
    fn store_with(self, store: impl FnOnce(Bytes) + Send + 'static) {
        let Some(chunks) = self.chunks else { return };
        tokio::task::spawn_blocking(move || {
            let whole = match <[Bytes; 1]>::try_from(chunks) {
                Ok([one]) => one,
                Err(chunks) => chunks.concat().into(),
            };
            store(whole)
        });
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
    let mut kept = Kept::new(limits.cached, path);
    let mut head = BytesMut::new();
    while head.len() <= limits.buffered {
        match reader.next().await {
            Err(e) => return e.reply(),
            Ok(Some(data)) => head.extend_from_slice(&data),
            Ok(None) => {
                let whole = head.freeze();
                kept.push(whole.clone());
                kept.store_with(store);
                let body = Full::new(whole).map_err(|never| match never {});
                return Response::from_parts(parts, body.boxed_unsync());
            }
        }
    }
    let head = head.freeze();
    kept.push(head.clone());
    let first = futures::stream::once(async move { Ok(Frame::data(head)) });
    let rest = futures::stream::unfold(Some((reader, kept, store)), |streaming| async move {
        let (mut reader, mut kept, store) = streaming?;
        match reader.next().await {
            // With a known length the client may have its last byte before the body is
            // polled again: store as soon as the last chunk is in.
            Ok(Some(data)) if reader.body.is_end_stream() => {
                kept.push(data.clone());
                kept.store_with(store);
                Some((Ok(Frame::data(data)), None))
            }
            Ok(Some(data)) => {
                kept.push(data.clone());
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
