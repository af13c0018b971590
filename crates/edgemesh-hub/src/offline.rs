//! Offline answers (no healthy upstream). The rules, in order:
//! - writes and other non-reads → 503 with a Status saying the cloud is unreachable;
//! - discovery → from the cache (any agent's copy: it is not per client);
//! - a client whose User-Agent is not in `cache_agents` → 503, nothing from the cache;
//! - a client whose credentials the apiserver never accepted for that resource → 401/403;
//! - get/list/watch → from the cache; what was never cached is a 503, **never an empty list**.

use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode, header};

use crate::client::Client;
use crate::request::{RequestInfo, ResourceRequest, Target, Verb};
use crate::response::{ServedBy, json_response, reply};
use crate::state::State;
use crate::store::{ListScope, Lookup};
use crate::upstream::Body;

const UNAVAILABLE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

pub fn answer(
    state: &Arc<State>,
    parts: &http::request::Parts,
    info: &RequestInfo,
    client: &Client,
) -> (Response<Body>, ServedBy) {
    let hub = |code, reason, message: String| (reply(code, reason, &message), ServedBy::Hub);
    match &info.target {
        Target::Discovery if info.verb == Verb::Get => {
            match state.cache.discovery(&client.agent, parts.uri.path()) {
                Some(body) => (json_response(StatusCode::OK, body), ServedBy::Cache),
                None => hub(
                    UNAVAILABLE,
                    "ServiceUnavailable",
                    format!(
                        "edge hub: the cloud is unreachable and {} was never cached",
                        parts.uri.path()
                    ),
                ),
            }
        }
        Target::Resource(r) if info.verb.is_read() && r.subresource.is_none() => {
            resource(state, info.verb, r, client)
        }
        _ => hub(
            UNAVAILABLE,
            "ServiceUnavailable",
            format!(
                "edge hub: the cloud is unreachable; {} {} is not possible offline (only get, list and watch are served from the cache)",
                info.verb.as_str(),
                info.resource_label()
            ),
        ),
    }
}

fn resource(
    state: &Arc<State>,
    verb: Verb,
    r: &ResourceRequest,
    client: &Client,
) -> (Response<Body>, ServedBy) {
    let hub = |code, reason, message: String| (reply(code, reason, &message), ServedBy::Hub);
    let what = r.key.dir_name();
    if !client.cached {
        return hub(
            UNAVAILABLE,
            "ServiceUnavailable",
            format!(
                "edge hub: the cloud is unreachable and User-Agent '{}' is not in cache_agents, so nothing is served from the cache for it",
                client.agent
            ),
        );
    }
    if !state.cache.has_resource(&client.agent, &r.key) {
        return not_cached(&client.agent, &what);
    }
    if !state
        .cache
        .credential_known(&client.agent, &r.key, &client.credential)
    {
        let (code, reason) = if client.has_credentials {
            (StatusCode::FORBIDDEN, "Forbidden")
        } else {
            (StatusCode::UNAUTHORIZED, "Unauthorized")
        };
        return hub(
            code,
            reason,
            format!(
                "edge hub (offline): these credentials were never accepted by the apiserver for {what}; cached data is only served to the client it was cached for"
            ),
        );
    }
    match verb {
        Verb::Get => get(state, r, client, &what),
        Verb::List => list(state, r, client, &what),
        _ => watch(state, r, client, &what),
    }
}

fn not_cached(agent: &str, what: &str) -> (Response<Body>, ServedBy) {
    let message = format!(
        "edge hub: the cloud is unreachable and {what} was never cached for User-Agent '{agent}'"
    );
    (
        reply(UNAVAILABLE, "ServiceUnavailable", &message),
        ServedBy::Hub,
    )
}

fn get(
    state: &State,
    r: &ResourceRequest,
    client: &Client,
    what: &str,
) -> (Response<Body>, ServedBy) {
    let ns = r.namespace.as_deref().unwrap_or("");
    let name = r.name.as_deref().unwrap_or("");
    match state.cache.get(&client.agent, &r.key, ns, name) {
        Lookup::Found(body) => (json_response(StatusCode::OK, body), ServedBy::Cache),
        Lookup::NotFound => {
            let message = format!("{} \"{name}\" not found", r.key.resource);
            (
                reply(StatusCode::NOT_FOUND, "NotFound", &message),
                ServedBy::Cache,
            )
        }
        Lookup::NotCached => not_cached(&client.agent, &format!("{what} {ns}/{name}")),
    }
}

fn scope_of(r: &ResourceRequest) -> ListScope {
    ListScope {
        namespace: r.namespace.clone(),
        label_selector: r.query.label_selector.clone(),
        field_selector: r.query.field_selector.clone(),
    }
}

fn list(
    state: &State,
    r: &ResourceRequest,
    client: &Client,
    what: &str,
) -> (Response<Body>, ServedBy) {
    match state.cache.list(&client.agent, &r.key, &scope_of(r)) {
        Ok(Lookup::Found(body)) => (json_response(StatusCode::OK, body), ServedBy::Cache),
        Ok(_) => not_cached(
            &client.agent,
            &format!("a complete list of {what} for this namespace and selector"),
        ),
        Err(e) => (
            reply(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
            ServedBy::Hub,
        ),
    }
}

fn watch(
    state: &Arc<State>,
    r: &ResourceRequest,
    client: &Client,
    what: &str,
) -> (Response<Body>, ServedBy) {
    // A watch is only held open where a list could be answered: the client's next relist must work.
    match state.cache.list(&client.agent, &r.key, &scope_of(r)) {
        Ok(Lookup::Found(_)) => {}
        Ok(_) => return not_cached(&client.agent, &format!("a complete list of {what}")),
        Err(e) => {
            return (
                reply(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
                ServedBy::Hub,
            );
        }
    }
    let timeout = r.query.timeout_seconds.map(Duration::from_secs);
    let body = crate::watch::offline_body(
        state,
        &client.agent,
        &r.key,
        r.query.allow_bookmarks,
        timeout,
    );
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    (response, ServedBy::Cache)
}
