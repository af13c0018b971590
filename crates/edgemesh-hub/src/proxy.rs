//! One request, top to bottom: classify → online? forward (and cache what passes) : answer from
//! the cache → one log line in the spirit of edge-hub's
//! (`kubectl list pods: /api/v1/pods with status code 200, spent 2.1ms`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::client::{Client, Front};
use crate::creds::credential_hash;
use crate::health::Outcome;
use crate::metrics::{RequestLabels, ServedByLabels};
use crate::request::{RequestInfo, Verb, agent_name};
use crate::response::{ServedBy, reply};
use crate::state::State;
use crate::store::is_safe_component;
use crate::upstream::{Body, BoxError, empty_body};
use crate::{offline, passthrough, prober};

pub async fn handle(
    state: Arc<State>,
    front: Front,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    if front == Front::Node && !request.headers().contains_key(header::AUTHORIZATION) {
        // Before the credential hash is taken: the cache is bound to the node's identity.
        if let Some(token) = state.own_token.header() {
            request.headers_mut().insert(header::AUTHORIZATION, token);
        }
    }
    let uri = request.uri().clone();
    let info = RequestInfo::parse(request.method(), uri.path(), uri.query());
    let client = client_of(&state, request.headers());
    let (response, served_by) = route(&state, request, &info, &client).await;
    let code = response.status().as_u16();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // The one log line with values in its message: it keeps edge-hub's access-log shape, which
    // people coming from edge-hub read and grep (docs/edge-hub.md).
    tracing::info!(
        served_by = served_by.as_str(),
        "{} {} {}: {path} with status code {code}, spent {:?}",
        client.agent,
        info.verb.as_str(),
        info.resource_label(),
        started.elapsed()
    );
    let labels = RequestLabels {
        served_by: served_by.as_str().to_string(),
        verb: info.verb.as_str().to_string(),
        code,
    };
    state.metrics.requests.get_or_create(&labels).inc();
    let served_by = ServedByLabels {
        served_by: labels.served_by,
    };
    (state.metrics.request_duration.get_or_create(&served_by))
        .observe(started.elapsed().as_secs_f64());
    response
}

fn client_of(state: &State, headers: &HeaderMap) -> Client {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let agent = agent_name(user_agent).to_string();
    let cached = state.agents.caches(&agent) && is_safe_component(&agent);
    Client {
        agent,
        cached,
        credential: credential_hash(headers),
        has_credentials: crate::creds::has_credentials(headers),
    }
}

async fn route(
    state: &Arc<State>,
    request: Request<Incoming>,
    info: &RequestInfo,
    client: &Client,
) -> (Response<Body>, ServedBy) {
    let (mut parts, body) = request.into_parts();
    let mut body = Some(body);
    // Failover: a request without a body is retried when its upstream cannot be reached (on the
    // same upstream if a probe shows it is there, else on the next healthy one) or closed a
    // kept-alive connection without answering (once); one with a body is sent once.
    for round in 0..=state.upstreams.len() {
        let Some(index) = state.health.pick() else {
            break;
        };
        let attempt_body = match body.take() {
            Some(b) if has_body(&parts) => b.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
            _ => empty_body(),
        };
        let attempt = passthrough::Attempt {
            state,
            index,
            info,
            client,
        };
        match forward_or_cache(attempt, &mut parts, attempt_body).await {
            Ok(answer) => return answer,
            Err(passthrough::ForwardError::Connect(e)) => {
                tracing::warn!(upstream = %state.upstreams[index].url, error = %e, "upstream unreachable");
                mark_unreachable(state, index).await;
                if has_body(&parts) {
                    break;
                }
            }
            Err(passthrough::ForwardError::ClosedUnanswered(e))
                if round == 0 && !has_body(&parts) =>
            {
                tracing::debug!(upstream = %state.upstreams[index].url, error = %e, "sending again on a new connection");
            }
            Err(
                e @ (passthrough::ForwardError::Other(_)
                | passthrough::ForwardError::ClosedUnanswered(_)),
            ) => {
                let message = format!(
                    "edge hub: upstream {} failed: {e}",
                    state.upstreams[index].url
                );
                return (
                    reply(StatusCode::BAD_GATEWAY, "BadGateway", &message),
                    ServedBy::Hub,
                );
            }
        }
    }
    offline::answer(state, &parts, info, client)
}

/// How long a cached client's read waits for its upstream before the hub asks whether the
/// cloud is still there ([`prober::probe_now`]). With the defaults a silent cloud loss gets its
/// first answer from the cache after ~2 s instead of after the prober's verdict (interval ×
/// failures, ~15 s).
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Forwards the request. A get or list of a cached client that gets no answer within
/// [`ANSWER_WAIT`] triggers a probe of that upstream; only when the probe fails too is the
/// request answered from the cache (if the cache can answer it), so a healthy but slow cloud is
/// always waited for and never answered with stale data.
async fn forward_or_cache(
    attempt: passthrough::Attempt<'_>,
    parts: &mut http::request::Parts,
    body: Body,
) -> Result<(Response<Body>, ServedBy), passthrough::ForwardError> {
    let passthrough::Attempt {
        state,
        index,
        info,
        client,
    } = attempt;
    let may_fall_back = client.cached
        && info.is_cacheable()
        && matches!(info.verb, Verb::Get | Verb::List)
        && !has_body(parts);
    // Only a request that may be answered from the cache needs its head kept.
    let request_parts = may_fall_back.then(|| copy_of(parts));
    let forward = passthrough::forward(attempt, parts, body);
    let mut forward = std::pin::pin!(forward);
    if let Some(request_parts) = request_parts {
        tokio::select! {
            answer = &mut forward => return answer.map(|r| (r, ServedBy::Upstream)),
            () = tokio::time::sleep(ANSWER_WAIT) => {}
        }
        let probe = prober::probe_now(state, index);
        tokio::select! {
            answer = &mut forward => return answer.map(|r| (r, ServedBy::Upstream)),
            outcome = probe => if outcome != Outcome::Success {
                prober::record(state, index, Outcome::Failure);
                let (response, served_by) = offline::answer(state, &request_parts, info, client);
                if served_by == ServedBy::Cache {
                    let upstream = &state.upstreams[index].url;
                    tracing::warn!(%upstream, "no answer and no answer to a probe: answered from the cache while the cloud's health is decided");
                    return Ok((response, served_by));
                }
            }
        }
    }
    forward.await.map(|r| (r, ServedBy::Upstream))
}

/// One request could not connect. That alone is no cloud outage (a lost SYN, a full backlog):
/// the upstream is marked unhealthy only if a probe cannot reach it either — before, one connect
/// timeout switched the whole hub offline and cut every request in flight.
async fn mark_unreachable(state: &Arc<State>, index: usize) {
    if !state.health.is_online() {
        return;
    }
    if prober::probe_now(state, index).await == Outcome::Success {
        return;
    }
    prober::record(state, index, Outcome::ConnectFailed);
}

/// The request head again (`Parts` is not `Clone`), for an answer from the cache after the
/// original went upstream.
fn copy_of(parts: &http::request::Parts) -> http::request::Parts {
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}

fn has_body(parts: &http::request::Parts) -> bool {
    !matches!(parts.method, http::Method::GET | http::Method::HEAD)
        || parts.headers.contains_key(header::UPGRADE)
}
