//! Turns one kube-runtime watcher's events into source events, and decides what a failing
//! watcher means for readiness: a required kind is waited for and retried; an optional or
//! replaceable kind that the server refuses (403, 404, metaServer 500) ends its watch so the
//! caller can do without it or fall back.

use std::time::Duration;

use edgemesh_model::{Resource, ResourceKind, ResourceRef, SourceId};
use futures::{Stream, StreamExt};
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

use super::refusal::{Grant, Refusal, classify_watch, describe};
use super::retry::Retry;
use crate::convert::InvalidObject;
use crate::publisher::SourceEvent;

/// How long readiness waits for an optional kind's first list when it neither arrives nor fails.
pub const OPTIONAL_WAIT: Duration = Duration::from_secs(1);

/// What the agent does when a kind cannot be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Readiness waits for it; a refusal is logged (with what to grant) and retried.
    Required,
    /// A refusal ends the watch so that the caller watches a replacement; readiness waits.
    Replaceable,
    /// A refusal ends the watch; readiness waits at most [`OPTIONAL_WAIT`], and not at all
    /// once the first list failed.
    Optional,
}

/// One watched kind.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub kind: ResourceKind,
    pub role: Role,
    pub grant: Grant,
    /// A kind this one stands in for: marked not served at the first complete list.
    pub replaces: Option<ResourceKind>,
}

/// Why a watch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The events channel closed or the stream ended.
    Closed,
    /// The server refused the kind (not for [`Role::Required`]); its objects were cleared.
    Refused(Refusal),
}

type Events = mpsc::Sender<SourceEvent>;

/// Forwards watcher events; invalid objects are logged and treated as absent, and so are, without
/// a word, objects `convert` says are not the mesh's (`Ok(None)`: a Secret without TLS keys).
pub async fn forward<K, S, C, KeyOf>(
    stream: S,
    plan: Plan,
    events: Events,
    convert: C,
    key_of: KeyOf,
) -> Ended
where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
    C: Fn(&K) -> Result<Option<Resource>, InvalidObject>,
    KeyOf: Fn(&K) -> edgemesh_model::ObjectKey,
{
    let kind = plan.kind;
    let mut stream = std::pin::pin!(stream);
    let mut buffer = Vec::new();
    let mut first_sync = true;
    // Readiness stops waiting for an optional kind after a deadline or its first failure.
    let mut waiting = plan.role == Role::Optional;
    let deadline = tokio::time::Instant::now() + OPTIONAL_WAIT;
    let mut retry = Retry::default();
    loop {
        let item = if waiting {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(item) => item,
                Err(_) => {
                    tracing::warn!(%kind, within = ?OPTIONAL_WAIT, "not listed in time; readiness does not wait for it (still trying)");
                    waiting = false;
                    if !send(&events, not_served(kind)).await {
                        return Ended::Closed;
                    }
                    continue;
                }
            }
        } else {
            stream.next().await
        };
        let Some(item) = item else {
            return Ended::Closed;
        };
        // The watcher is polled again only after the pause (it is lazy): this is its backoff.
        let pause = match &item {
            Ok(_) => {
                retry.reset();
                Duration::ZERO
            }
            Err(e) => retry.delay(e),
        };
        let event = match item {
            Ok(Event::Init) => {
                buffer.clear();
                continue;
            }
            Ok(Event::InitApply(object)) => {
                buffer.extend(valid(&convert, &object));
                continue;
            }
            Ok(Event::InitDone) => {
                tracing::debug!(%kind, objects = buffer.len(), "initial list complete");
                waiting = false;
                if first_sync && let Some(replaced) = plan.replaces {
                    first_sync = false;
                    if !send(&events, not_served(replaced)).await {
                        return Ended::Closed;
                    }
                }
                SourceEvent::Relist(SourceId::KubeApi, kind, std::mem::take(&mut buffer))
            }
            Ok(Event::Apply(object)) => match valid(&convert, &object) {
                Some(resource) => SourceEvent::Apply(SourceId::KubeApi, resource),
                None => delete(kind, key_of(&object)),
            },
            Ok(Event::Delete(object)) => delete(kind, key_of(&object)),
            Err(e) => match (classify_watch(&e), plan.role) {
                (Some(refusal), Role::Replaceable | Role::Optional) => {
                    let cleared = SourceEvent::Relist(SourceId::KubeApi, kind, Vec::new());
                    let _ = send(&events, cleared).await;
                    return Ended::Refused(refusal);
                }
                (refusal, _) => {
                    report_error(plan, &e, refusal.as_ref(), pause);
                    let release = waiting.then(|| not_served(kind));
                    if waiting {
                        waiting = false;
                        tracing::warn!(%kind, "readiness does not wait for it (still trying)");
                    }
                    if let Some(event) = release
                        && !send(&events, event).await
                    {
                        return Ended::Closed;
                    }
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        if !send(&events, event).await {
            return Ended::Closed;
        }
    }
}

/// A watch error the watcher retries after `pause`; a refusal of a required kind says what to
/// grant.
fn report_error(plan: Plan, error: &watcher::Error, refusal: Option<&Refusal>, pause: Duration) {
    let kind = plan.kind;
    match refusal {
        Some(refusal @ Refusal::Forbidden(_)) => tracing::error!(
            %kind,
            grant = %plan.grant,
            retry_in = ?pause,
            error = %describe(error),
            hint = %plan.grant.hint(refusal),
            "the API server forbids the watch; retrying"
        ),
        _ => tracing::warn!(
            %kind,
            retry_in = ?pause,
            error = %describe(error),
            "watch error; retrying"
        ),
    }
}

fn not_served(kind: ResourceKind) -> SourceEvent {
    SourceEvent::NotServed(SourceId::KubeApi, kind)
}

fn delete(kind: ResourceKind, key: edgemesh_model::ObjectKey) -> SourceEvent {
    SourceEvent::Delete(SourceId::KubeApi, ResourceRef { kind, key })
}

/// False when the publisher is gone.
async fn send(events: &Events, event: SourceEvent) -> bool {
    events.send(event).await.is_ok()
}

fn valid<K>(
    convert: &impl Fn(&K) -> Result<Option<Resource>, InvalidObject>,
    object: &K,
) -> Option<Resource> {
    convert(object)
        .map_err(|error| tracing::warn!(%error, "skipping an invalid object"))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgemesh_model::ObjectKey;
    use futures::stream;

    type Item = Result<Event<String>, watcher::Error>;

    fn forbidden() -> watcher::Error {
        let status = kube::core::Status::failure("nodes is forbidden", "Forbidden").with_code(403);
        watcher::Error::InitialListFailed(kube::Error::Api(status.boxed()))
    }

    fn outage() -> watcher::Error {
        let status =
            kube::core::Status::failure("unavailable", "ServiceUnavailable").with_code(503);
        watcher::Error::InitialListFailed(kube::Error::Api(status.boxed()))
    }

    fn plan(role: Role) -> Plan {
        Plan {
            kind: ResourceKind::Node,
            role,
            grant: Grant {
                group: "",
                resource: "nodes",
            },
            replaces: None,
        }
    }

    /// Runs `forward` over `items` then a stream that never ends; returns how it ended (None:
    /// still running at the end of the test) and every event it sent.
    async fn run(items: Vec<Item>, plan: Plan) -> (Option<Ended>, Vec<SourceEvent>) {
        let (tx, mut rx) = mpsc::channel(16);
        let stream = stream::iter(items).chain(stream::pending());
        let key = |name: &String| ObjectKey::cluster(name.as_str());
        let convert = |name: &String| {
            Err(InvalidObject {
                kind: ResourceKind::Node,
                key: key(name),
                reason: "not used".into(),
            })
        };
        let task = forward(stream, plan, tx, convert, key);
        let ended = tokio::time::timeout(OPTIONAL_WAIT * 3, task).await.ok();
        let mut sent = Vec::new();
        while let Ok(event) = rx.try_recv() {
            sent.push(event);
        }
        (ended, sent)
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_optional_kind_is_cleared_and_ends() {
        let (ended, sent) = run(vec![Err(forbidden())], plan(Role::Optional)).await;
        assert!(matches!(ended, Some(Ended::Refused(Refusal::Forbidden(_)))));
        let cleared = SourceEvent::Relist(SourceId::KubeApi, ResourceKind::Node, Vec::new());
        assert_eq!(sent, [cleared]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_required_kind_keeps_being_retried() {
        let (ended, sent) = run(vec![Err(forbidden())], plan(Role::Required)).await;
        assert_eq!(ended, None, "still watching");
        assert!(sent.is_empty(), "readiness keeps waiting: {sent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_stops_waiting_for_an_optional_kind_after_an_outage_or_a_deadline() {
        let released = [SourceEvent::NotServed(
            SourceId::KubeApi,
            ResourceKind::Node,
        )];
        let (ended, sent) = run(vec![Err(outage())], plan(Role::Optional)).await;
        assert_eq!((ended, sent.as_slice()), (None, released.as_slice()));
        let (ended, sent) = run(Vec::new(), plan(Role::Optional)).await;
        assert_eq!((ended, sent.as_slice()), (None, released.as_slice()));
        let (_, sent) = run(Vec::new(), plan(Role::Required)).await;
        assert!(sent.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_replacement_marks_the_kind_it_replaces_at_its_first_list() {
        let plan = Plan {
            replaces: Some(ResourceKind::Endpoints),
            ..plan(Role::Replaceable)
        };
        let items = vec![Ok(Event::Init), Ok(Event::InitDone)];
        let (_, sent) = run(items, plan).await;
        let want = [
            SourceEvent::NotServed(SourceId::KubeApi, ResourceKind::Endpoints),
            SourceEvent::Relist(SourceId::KubeApi, ResourceKind::Node, Vec::new()),
        ];
        assert_eq!(sent, want);
    }
}
