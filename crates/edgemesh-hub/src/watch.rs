//! Watches. Online, a cached agent's watch stream is passed through frame by frame while each
//! complete event line is applied to the cache. The stream is ended when the hub goes offline,
//! so the client re-watches and gets the offline watch. Offline, a watch is held open (with
//! bookmarks if asked) and ended when the cloud returns, so the client relists fresh data.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use tokio::sync::watch as signal;

use crate::attempt::Attempt;
use crate::health::Outcome;
use crate::prober;
use crate::request::ResourceKey;
use crate::state::State;
use crate::store::Cache;
use crate::upstream::{Body, BoxError};

/// Applies the events of an online watch to the cache as they pass.
///
/// The stream ends when the hub goes offline (the upstream connection may be silently dead), and
/// the client's response is then held open, without events, until the cloud returns. When the
/// upstream connection breaks (the apiserver died: reset or EOF mid-stream), the break is not
/// passed on either: the upstream is probed, and if it is gone the watch is held open while the
/// hub decides and for as long as it stays offline ([`ride_out_break`]).
pub fn tee(attempt: Attempt<'_>, response: Response<Incoming>) -> Response<Body> {
    let (state, client) = (attempt.state, attempt.client);
    let Some(resource) = attempt.info.resource() else {
        return response.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
    };
    state
        .cache
        .record_credential(&client.agent, &resource.key, &client.credential);
    let mut applier = EventApplier::new(
        Arc::clone(&state.cache),
        client.agent.clone(),
        resource.key.clone(),
    );
    let online = state.health.subscribe();
    let (parts, body) = response.into_parts();
    let broke = Arc::new(AtomicBool::new(false));
    let broke_flag = Arc::clone(&broke);
    let frames = body
        .into_data_stream()
        .take_while(move |chunk| {
            let ok = chunk.is_ok();
            if !ok {
                broke_flag.store(true, Ordering::Relaxed);
            }
            futures::future::ready(ok)
        })
        .filter_map(move |chunk| {
            let frame = chunk.ok().map(|data| {
                applier.feed(&data);
                Ok::<_, BoxError>(Frame::data(data))
            });
            futures::future::ready(frame)
        });
    let after_break = silent(ride_out_break(Arc::clone(state), attempt.index, broke));
    // Cut when the hub goes offline, then held open (silent) until the cloud returns, so a
    // client watching across the cut keeps its watch and relists when it ends.
    let hold = hold_while_offline(state.health.subscribe());
    let frames = frames
        .chain(after_break)
        .take_until(until_offline(online))
        .chain(hold);
    Response::from_parts(parts, StreamBody::new(frames).boxed_unsync())
}

/// After the upstream side of a watch broke: ends at once when the upstream still answers a
/// probe (the client re-watches); otherwise waits for the hub's verdict (the caller cuts over to
/// the offline hold as soon as the hub is offline) and ends if the cloud is declared healthy.
async fn ride_out_break(state: Arc<State>, index: usize, broke: Arc<AtomicBool>) {
    if !broke.load(Ordering::Relaxed) {
        return;
    }
    if prober::probe_now(&state, index).await == Outcome::Success {
        return;
    }
    prober::record(&state, index, Outcome::Failure);
    let config = state.health.config();
    let verdict = (config.interval + config.timeout) * config.failure_threshold.max(1);
    let mut online = state.health.subscribe();
    let _ = tokio::time::timeout(verdict, online.wait_for(|up| !*up)).await;
}

/// A stream that runs `work` and yields nothing.
fn silent(
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, BoxError>> {
    futures::stream::once(work).filter_map(|()| futures::future::ready(None))
}

/// An empty stream that ends at once when online, or when the cloud returns.
fn hold_while_offline(
    online: signal::Receiver<bool>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, BoxError>> {
    silent(until_online(online))
}

async fn until_offline(mut online: signal::Receiver<bool>) {
    let _ = online.wait_for(|up| !*up).await;
}

async fn until_online(mut online: signal::Receiver<bool>) {
    let _ = online.wait_for(|up| *up).await;
}

/// The longest watch event line the cache applies (a big object is a few hundred KiB). A stream
/// that sends more without a newline is not a watch the cache can follow: it stops applying it
/// (the bytes still reach the client) instead of buffering without bound.
const MAX_EVENT_LINE: usize = 16 * 1024 * 1024;

/// Splits the stream into lines and applies each event.
struct EventApplier {
    cache: Arc<Cache>,
    agent: String,
    key: ResourceKey,
    pending: BytesMut,
    /// How much of `pending` is known to hold no newline: each byte is scanned once.
    scanned: usize,
    /// Gave up on this stream (a line longer than [`MAX_EVENT_LINE`]).
    abandoned: bool,
}

impl EventApplier {
    fn new(cache: Arc<Cache>, agent: String, key: ResourceKey) -> Self {
        Self {
            cache,
            agent,
            key,
            pending: BytesMut::new(),
            scanned: 0,
            abandoned: false,
        }
    }

    fn feed(&mut self, data: &Bytes) {
        if self.abandoned {
            return;
        }
        self.pending.extend_from_slice(data);
        while let Some(offset) = self.pending[self.scanned..]
            .iter()
            .position(|b| *b == b'\n')
        {
            let line = self.pending.split_to(self.scanned + offset + 1);
            self.scanned = 0;
            self.apply(&line);
        }
        self.scanned = self.pending.len();
        if self.pending.len() > MAX_EVENT_LINE {
            tracing::warn!(
                agent = %self.agent,
                resource = %self.key.dir_name(),
                limit.bytes = MAX_EVENT_LINE,
                "watch stream sent more than the limit without a line end; its events are no longer cached"
            );
            self.pending = BytesMut::new();
            self.abandoned = true;
        }
    }

    fn apply(&self, line: &[u8]) {
        let Ok(mut event) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(object) = event.get_mut("object").map(Value::take) else {
            return;
        };
        match kind.as_str() {
            "ADDED" | "MODIFIED" => {
                self.cache.store_object(&self.agent, &self.key, object);
            }
            "DELETED" => {
                let field = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
                let (ns, name) = (field("/metadata/namespace"), field("/metadata/name"));
                self.cache.remove_object(&self.agent, &self.key, ns, name);
            }
            _ => {}
        }
    }
}

/// The body of an offline watch: bookmarks every `interval` when asked for, ends when the cloud
/// returns or after `timeout`.
pub fn offline_body(
    state: &State,
    agent: &str,
    key: &ResourceKey,
    bookmarks: bool,
    timeout: Option<Duration>,
) -> Body {
    let kind = state.cache.object_kind(agent, key);
    let cache = Arc::clone(&state.cache);
    let (agent, key) = (agent.to_string(), key.clone());
    let interval = state.bookmark_interval;
    let ticks = futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(interval).await;
        Some(((), ()))
    });
    let events = ticks
        .filter(move |()| futures::future::ready(bookmarks))
        .map(move |()| {
            let rv = cache.newest_version(&agent, &key).unwrap_or_default();
            Ok::<_, BoxError>(Frame::data(bookmark(&kind, &key.api_version(), &rv)))
        });
    let online = state.health.subscribe();
    let limit = timeout.unwrap_or(Duration::from_secs(30 * 60));
    let end = async move {
        tokio::select! {
            () = until_online(online) => {}
            () = tokio::time::sleep(limit) => {}
        }
    };
    StreamBody::new(events.take_until(Box::pin(end))).boxed_unsync()
}

fn bookmark(kind: &str, api_version: &str, rv: &str) -> Bytes {
    let event = serde_json::json!({"type": "BOOKMARK",
        "object": {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv}}});
    let mut line = serde_json::to_vec(&event).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An applier for agent `a`'s pods over a fresh cache (kept alive by the returned dir).
    fn pods_applier() -> (tempfile::TempDir, Arc<Cache>, ResourceKey, EventApplier) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(Cache::open(dir.path()).unwrap());
        let key = ResourceKey {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
        };
        let applier = EventApplier::new(Arc::clone(&cache), "a".into(), key.clone());
        (dir, cache, key, applier)
    }

    #[test]
    fn events_split_across_frames_are_applied_once_complete() {
        let (_dir, cache, key, mut applier) = pods_applier();
        let event = br#"{"type":"ADDED","object":{"metadata":{"name":"p","namespace":"n","resourceVersion":"9"}}}"#;
        applier.feed(&Bytes::copy_from_slice(&event[..20]));
        assert!(!cache.has_resource("a", &key));
        let mut rest = event[20..].to_vec();
        rest.push(b'\n');
        applier.feed(&Bytes::from(rest));
        assert!(matches!(
            cache.get("a", &key, "n", "p"),
            crate::store::Lookup::Found(_)
        ));
        applier.feed(&Bytes::from_static(b"{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"}}}\n"));
        assert_eq!(
            cache.get("a", &key, "n", "p"),
            crate::store::Lookup::NotCached
        );
    }

    /// A stream without newlines was rescanned from its start at every chunk (quadratic: a core
    /// burnt) and buffered without bound; now each byte is scanned once and the buffer is capped.
    #[test]
    fn a_stream_without_line_ends_is_scanned_once_and_capped() {
        let (_dir, _cache, _key, mut applier) = pods_applier();
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let started = std::time::Instant::now();
        for _ in 0..(MAX_EVENT_LINE / chunk.len() + 8) {
            applier.feed(&chunk);
        }
        assert!(applier.abandoned);
        assert!(applier.pending.is_empty(), "buffer released");
        // Quadratic rescanning of 16 MiB in 64 KiB chunks takes minutes; linear, milliseconds.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
