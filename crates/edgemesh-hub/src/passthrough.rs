//! Online: the request goes to an upstream with the client's own headers (its bearer token, so
//! the apiserver still enforces RBAC); the response comes back untouched and streaming. For a
//! cached agent the response is also stored: bodies of get/list/discovery through `answer.rs`,
//! watch events applied to the cache as they stream by (`watch.rs`).

use std::sync::Arc;

use bytes::Bytes;
use edgemesh_copy::Options;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::answer;
use crate::client::Client;
use crate::request::{RequestInfo, Target, Verb};
use crate::state::State;
use crate::store::ListScope;
use crate::upstream::{Body, BoxError, Upstream};
use crate::watch;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot connect: {0}")]
    Connect(String),
    /// A kept-alive connection was closed with no byte of an answer (an apiserver or a load
    /// balancer closing idle connections as the request went out): a request without a body
    /// may be sent again on a new connection.
    #[error("the upstream closed the connection without answering: {0}")]
    ClosedUnanswered(String),
    #[error("{0}")]
    Other(String),
}

/// Hop-by-hop headers, never forwarded (except Connection/Upgrade on an upgrade).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

pub use crate::attempt::Attempt;

pub async fn forward(
    attempt: Attempt<'_>,
    parts: &mut http::request::Parts,
    body: Body,
) -> Result<Response<Body>, ForwardError> {
    let state = attempt.state;
    let caching = attempt.client.cached && attempt.info.is_cacheable();
    let upgrade = parts.headers.contains_key(header::UPGRADE);
    let request = upstream_request(
        &state.upstreams[attempt.index],
        parts,
        body,
        caching,
        upgrade,
    )?;
    let client = if upgrade {
        &state.clients.fresh
    } else {
        &state.clients.pooled
    };
    let answer = tokio::select! {
        answer = client.request(request) => answer,
        () = state.health.offline() => {
            return Err(ForwardError::Connect("the cloud became unreachable while waiting for an answer".into()));
        }
    };
    let mut response = answer.map_err(|e| {
        if e.is_connect() {
            ForwardError::Connect(error_chain(&e))
        } else if closed_without_answer(&e) {
            ForwardError::ClosedUnanswered(error_chain(&e))
        } else {
            ForwardError::Other(error_chain(&e))
        }
    })?;
    if upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS {
        splice_upgrade(parts, &mut response);
        return Ok(response.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()));
    }
    strip_hop_by_hop(response.headers_mut());
    if !caching {
        return Ok(response.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()));
    }
    Ok(cache_response(attempt, parts.uri.path(), response).await)
}

/// Whether the connection ended before any byte of the response (hyper's "incomplete message").
fn closed_without_answer(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn upstream_request(
    upstream: &Upstream,
    parts: &http::request::Parts,
    body: Body,
    caching: bool,
    upgrade: bool,
) -> Result<Request<Body>, ForwardError> {
    let path = upstream_path(&parts.uri, caching);
    let uri = upstream
        .uri(&path)
        .map_err(|e| ForwardError::Other(e.to_string()))?;
    let mut builder = Request::builder().method(parts.method.clone()).uri(uri);
    let mut headers = parts.headers.clone();
    headers.remove(header::HOST);
    if !upgrade {
        strip_hop_by_hop(&mut headers);
    }
    if caching {
        // Stored answers must be plain JSON objects: no Table, no protobuf, no gzip.
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        headers.remove(header::ACCEPT_ENCODING);
    }
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder
        .body(body)
        .map_err(|e| ForwardError::Other(e.to_string()))
}

/// The path and query sent upstream. A cached agent's first list page is asked for whole
/// (`limit` dropped) so the cache can swap in a complete list.
fn upstream_path(uri: &http::Uri, caching: bool) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_string();
    };
    if !caching || query.contains("continue=") {
        return format!("{path}?{query}");
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.starts_with("limit="))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// After a 101 from upstream, joins the client's connection and the upstream's, both ways.
fn splice_upgrade(parts: &mut http::request::Parts, response: &mut Response<Incoming>) {
    let Some(client_side) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        tracing::warn!("upgrade requested but the client connection cannot be upgraded");
        return;
    };
    let upstream_side = hyper::upgrade::on(response);
    tokio::spawn(async move {
        let (client_io, upstream_io) = match tokio::try_join!(client_side, upstream_side) {
            Ok(both) => both,
            Err(e) => {
                tracing::warn!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut a = TokioIo::new(client_io);
        let mut b = TokioIo::new(upstream_io);
        let _ = edgemesh_copy::both_ways(&mut a, &mut b, &(), Options::default()).await;
    });
}

async fn cache_response(
    attempt: Attempt<'_>,
    path: &str,
    response: Response<Incoming>,
) -> Response<Body> {
    let (state, info, client) = (attempt.state, attempt.info, attempt.client);
    let status = response.status();
    if info.verb == Verb::Watch && status.is_success() {
        return watch::tee(attempt, response);
    }
    // Parsing and storing a big list takes milliseconds: it happens off the response path. A
    // watch event that overtakes it is undone by the list for a moment and comes again on the
    // watch that follows the list (see `replace_list`).
    let (task_state, info, client, stored_path) = (
        Arc::clone(state),
        info.clone(),
        client.clone(),
        path.to_string(),
    );
    answer::pass_and_store(state, path, response, move |bytes| {
        store(&task_state, &info, &client, &stored_path, status, &bytes)
    })
    .await
}

/// Stores a buffered get/list/discovery answer.
fn store(
    state: &State,
    info: &RequestInfo,
    client: &Client,
    path: &str,
    status: StatusCode,
    bytes: &Bytes,
) {
    let agent = &client.agent;
    let resource = match &info.target {
        Target::Discovery if status.is_success() => {
            state.cache.store_discovery(agent, path, bytes.clone());
            return;
        }
        Target::Resource(r) => r,
        _ => return,
    };
    if status == StatusCode::NOT_FOUND && info.verb == Verb::Get {
        let ns = resource.namespace.as_deref().unwrap_or("");
        let name = resource.name.as_deref().unwrap_or("");
        state.cache.remove_object(agent, &resource.key, ns, name);
        return;
    }
    if !status.is_success() {
        return;
    }
    state
        .cache
        .record_credential(agent, &resource.key, &client.credential);
    if info.verb == Verb::List && !resource.query.has_continue {
        let scope = ListScope {
            namespace: resource.namespace.clone(),
            label_selector: resource.query.label_selector.clone(),
            field_selector: resource.query.field_selector.clone(),
        };
        if let Err(e) = state.cache.store_list(agent, &resource.key, &scope, bytes) {
            tracing::warn!(%path, error = %e, "not caching a response");
        }
    } else if info.verb == Verb::Get
        && let Ok(value) = serde_json::from_slice(bytes)
    {
        state.cache.store_object(agent, &resource.key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_dropped_only_for_cached_first_pages() {
        let table = [
            ("/api/v1/pods?limit=500", true, "/api/v1/pods"),
            (
                "/api/v1/pods?limit=500&labelSelector=a",
                true,
                "/api/v1/pods?labelSelector=a",
            ),
            (
                "/api/v1/pods?limit=500&continue=abc",
                true,
                "/api/v1/pods?limit=500&continue=abc",
            ),
            ("/api/v1/pods?limit=500", false, "/api/v1/pods?limit=500"),
            ("/api/v1/pods", true, "/api/v1/pods"),
        ];
        for (uri, caching, expected) in table {
            let uri: http::Uri = uri.parse().unwrap();
            assert_eq!(upstream_path(&uri, caching), expected);
        }
    }
}
