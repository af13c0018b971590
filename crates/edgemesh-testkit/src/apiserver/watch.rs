//! Watch streams: newline-delimited JSON events over a chunked response.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Shared;
use super::body::{Body, BoxError};
use super::resources::Resource;
use super::rest::{Filter, for_version};
use super::status::ApiError;
use super::store::{Event, EventType};

type Chunk = Result<Frame<Bytes>, BoxError>;

/// What one watch sends, fixed when it starts.
#[derive(Debug)]
struct Plan {
    resource: &'static Resource,
    version: String,
    filter: Filter,
    /// Events to send first (synthetic ADDED, or history replay), as (type, object).
    backlog: Vec<(&'static str, Value)>,
    /// The resourceVersion the backlog brings the client to.
    caught_up: u64,
    expired: Option<ApiError>,
    bookmarks: bool,
    initial_events_end: bool,
    timeout: Option<Duration>,
}

/// Starts a watch: plans under the store lock (snapshot + subscribe, so nothing is missed),
/// then streams from a task.
pub fn start(
    shared: &Arc<Shared>,
    target: &super::route::Target,
    params: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_request(target, params)?;
    let rv_param = params
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let send_initial = params.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let store = shared.store();
    let mut plan = Plan {
        resource: target.resource,
        version: target.version.clone(),
        filter,
        backlog: Vec::new(),
        caught_up: store.rv,
        expired: None,
        bookmarks,
        initial_events_end: send_initial && bookmarks,
        timeout,
    };
    if send_initial || rv_param.is_empty() || rv_param == "0" {
        let objects = store.list(target.resource, target.namespace.as_deref());
        plan.backlog = objects
            .into_iter()
            .filter(|o| plan.filter.matches(o))
            .map(|o| ("ADDED", o))
            .collect();
    } else {
        let rv: u64 = rv_param
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv_param:?}")))?;
        if rv < store.compacted_below {
            plan.expired = Some(ApiError::expired(rv, store.compacted_below));
        } else {
            let events = store.history_after(target.resource, rv);
            plan.backlog = events
                .iter()
                .filter_map(|e| visible(&plan.filter, e))
                .collect();
        }
    }
    let events = store.events.subscribe();
    drop(store);
    let (tx, rx) = mpsc::channel::<Chunk>(256);
    tokio::spawn(stream(shared.clone(), plan, events, tx));
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }));
    let mut resp = Response::new(BodyExt::boxed(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// How an event looks through a filter: a selector transition turns MODIFIED into ADDED or
/// DELETED, as the real watch cache does.
fn visible(filter: &Filter, e: &Event) -> Option<(&'static str, Value)> {
    let now = filter.matches(&e.object);
    let before = e.old.as_ref().map_or(now, |o| filter.matches(o));
    let kind = match (e.kind, before, now) {
        (EventType::Added, _, true) => "ADDED",
        (EventType::Deleted, _, true) => "DELETED",
        (EventType::Modified, true, true) => "MODIFIED",
        (EventType::Modified, false, true) => "ADDED",
        (EventType::Modified, true, false) => "DELETED",
        _ => return None,
    };
    Some((kind, e.object.clone()))
}

/// Counts open watches for [`super::ApiServer::open_watches`].
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn stream(
    shared: Arc<Shared>,
    plan: Plan,
    mut events: broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Chunk>,
) {
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let _open = OpenWatch(shared.clone());
    let mut cut = shared.cut.subscribe();
    cut.mark_unchanged();
    if let Some(e) = &plan.expired {
        let _ = tx.send(frame("ERROR", &e.to_status())).await;
        return;
    }
    for (kind, obj) in &plan.backlog {
        if tx
            .send(event_frame(&plan, kind, obj.clone()))
            .await
            .is_err()
        {
            return;
        }
    }
    if plan.bookmarks
        && tx
            .send(bookmark(&plan, plan.caught_up, plan.initial_events_end))
            .await
            .is_err()
    {
        return;
    }
    let deadline = plan.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + shared.bookmark_interval,
        shared.bookmark_interval,
    );
    loop {
        let step = tokio::select! {
            _ = cut.changed() => Step::Abort,
            _ = sleep_until(deadline) => Step::End,
            _ = tx.closed() => Step::End,
            _ = ticks.tick(), if plan.bookmarks => periodic_bookmark(&shared, &plan, &mut events, &tx).await,
            received = events.recv() => match received {
                Ok(e) => forward(&plan, &e, &tx).await,
                // Too slow to keep up: end the stream the hard way; the client resumes.
                Err(broadcast::error::RecvError::Lagged(_)) => Step::Abort,
                Err(broadcast::error::RecvError::Closed) => Step::End,
            },
        };
        match step {
            Step::Continue => {}
            Step::End => return,
            Step::Abort => {
                let _ = tx.send(Err("watch cut by the test".into())).await;
                return;
            }
        }
    }
}

enum Step {
    Continue,
    End,
    Abort,
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn forward(plan: &Plan, e: &Event, tx: &mpsc::Sender<Chunk>) -> Step {
    if e.resource != plan.resource.plural || e.rv <= plan.caught_up {
        return Step::Continue;
    }
    let Some((kind, obj)) = visible(&plan.filter, e) else {
        return Step::Continue;
    };
    match tx.send(event_frame(plan, kind, obj)).await {
        Ok(()) => Step::Continue,
        Err(_) => Step::End,
    }
}

/// Delivers what is already queued, then bookmarks the store's current version: every event
/// up to it was committed (and queued) before the lock was taken.
async fn periodic_bookmark(
    shared: &Shared,
    plan: &Plan,
    events: &mut broadcast::Receiver<Arc<Event>>,
    tx: &mpsc::Sender<Chunk>,
) -> Step {
    let rv = shared.store().rv;
    loop {
        match events.try_recv() {
            Ok(e) => {
                if let Step::End = forward(plan, &e, tx).await {
                    return Step::End;
                }
            }
            Err(broadcast::error::TryRecvError::Empty) => break,
            Err(broadcast::error::TryRecvError::Lagged(_)) => return Step::Abort,
            Err(broadcast::error::TryRecvError::Closed) => return Step::End,
        }
    }
    if tx.send(bookmark(plan, rv, false)).await.is_err() {
        return Step::End;
    }
    Step::Continue
}

fn event_frame(plan: &Plan, kind: &str, obj: Value) -> Chunk {
    frame(kind, &for_version(plan.resource, &plan.version, obj))
}

fn bookmark(plan: &Plan, rv: u64, initial_events_end: bool) -> Chunk {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": plan.resource.kind, "apiVersion": plan.resource.api_version(&plan.version), "metadata": metadata});
    frame("BOOKMARK", &obj)
}

fn frame(kind: &str, obj: &Value) -> Chunk {
    let mut line = json!({"type": kind, "object": obj}).to_string();
    line.push('\n');
    Ok(Frame::data(Bytes::from(line)))
}
