//! `retries` of an HTTP route, as Envoy applies Istio's: `attempts` retries after the first
//! try, each try bounded by `perTryTimeout`, retried on the `retryOn` conditions, each retry
//! on another endpoint when the balancer has one (Istio's `previous_hosts` predicate). The
//! route's `timeout` bounds all tries together.
//!
//! A request is replayed only when its body is ours to send again: empty, or of a known length
//! up to [`REPLAY_LIMIT`] (read whole before the first try). A streamed body (no length, or a
//! longer one: gRPC streams, uploads) is retried only while it was not sent — when no
//! connection to an endpoint could be opened.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use edgemesh_model::ingress::RetriesSpec;
use http::request::Parts;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body as _;

use crate::backend::BackendError;
use crate::exchange::{Body, Failure};

/// The largest request body kept for a replay.
pub const REPLAY_LIMIT: u64 = 64 * 1024;

/// Retries when a route has no `retries`: Istio's default policy (2 retries on
/// `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes`), without
/// the `503` some Istio versions add as a retriable status code: a 503 may come from a backend
/// that did act on the request.
pub const DEFAULT_ATTEMPTS: u32 = 2;
const DEFAULT_RETRY_ON: &str = "connect-failure,refused-stream,unavailable,cancelled";

/// A route's compiled `retries`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    pub on: RetryOn,
}

/// The `retryOn` conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryOn {
    connect_failure: bool,
    refused_stream: bool,
    reset: bool,
    any_5xx: bool,
    gateway_error: bool,
    retriable_4xx: bool,
    /// HTTP status codes given as numbers (Istio's `retriable-status-codes`).
    status_codes: Vec<u16>,
    /// `grpc-status` codes of a trailers-only answer (`cancelled`, `unavailable`, …).
    grpc_codes: Vec<u32>,
}

impl RetryPolicy {
    /// The policy of a route: `None` (no retries) when `attempts` is 0, Istio's default when
    /// the route has no `retries`.
    pub fn compile(spec: Option<&RetriesSpec>) -> Result<Option<Self>, String> {
        let (attempts, per_try_timeout, retry_on) = match spec {
            None => (DEFAULT_ATTEMPTS, None, None),
            Some(spec) => (
                spec.attempts,
                spec.per_try_timeout,
                spec.retry_on.as_deref(),
            ),
        };
        if attempts == 0 {
            return Ok(None);
        }
        let on = RetryOn::parse(
            retry_on
                .filter(|r| !r.trim().is_empty())
                .unwrap_or(DEFAULT_RETRY_ON),
        )
        .map_err(|e| format!("retries.retryOn: {e}"))?;
        Ok(Some(RetryPolicy {
            attempts,
            per_try_timeout,
            on,
        }))
    }
}

impl RetryOn {
    /// A comma list of Envoy's HTTP and gRPC retry conditions and HTTP status codes (which
    /// Istio turns into `retriable-status-codes`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut on = RetryOn::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Ok(code) = item.parse::<u16>() {
                if !(100..=599).contains(&code) {
                    return Err(format!("{code} is not an HTTP status code"));
                }
                on.status_codes.push(code);
                continue;
            }
            match item {
                "connect-failure" => on.connect_failure = true,
                "refused-stream" => on.refused_stream = true,
                "reset" => on.reset = true,
                "5xx" => on.any_5xx = true,
                "gateway-error" => on.gateway_error = true,
                "retriable-4xx" => on.retriable_4xx = true,
                // The codes come as numbers in the same list.
                "retriable-status-codes" => {}
                // Envoy's own rate limiting and HTTP/3 never happen here.
                "envoy-ratelimited" | "http3-post-connect-failure" => {}
                "cancelled" => on.grpc_codes.push(1),
                "deadline-exceeded" => on.grpc_codes.push(4),
                "resource-exhausted" => on.grpc_codes.push(8),
                "internal" => on.grpc_codes.push(13),
                "unavailable" => on.grpc_codes.push(14),
                other => return Err(format!("{other:?} is not a supported retry condition")),
            }
        }
        Ok(on)
    }

    /// Whether a try that failed with `failure` is retried.
    pub(crate) fn retries_failure(&self, failure: &Failure) -> bool {
        let any_error = self.any_5xx || self.gateway_error;
        match failure {
            Failure::Backend(BackendError::Unreachable { .. }) => self.connect_failure || any_error,
            Failure::Backend(_) => false,
            Failure::Http(error) if refused_stream(error) => {
                self.refused_stream || self.reset || any_error
            }
            Failure::Http(_) | Failure::Timeout => self.reset || any_error,
        }
    }

    /// Whether a try answered with `response` is retried.
    pub fn retries_response<B>(&self, response: &Response<B>) -> bool {
        let code = response.status().as_u16();
        (self.any_5xx && code >= 500)
            || (self.gateway_error && matches!(code, 502..=504))
            || (self.retriable_4xx && code == 409)
            || self.status_codes.contains(&code)
            || response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
                .is_some_and(|code| self.grpc_codes.contains(&code))
    }
}

/// Whether the backend refused the HTTP/2 stream (it did not process the request).
fn refused_stream(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = e.source();
    }
    false
}

/// One try's two steps; a retry needs to know whether the body was handed over.
pub(crate) trait Exchange {
    type Connection;

    /// A connection to an endpoint of the target — not one of `avoid` while another is
    /// left — and that endpoint. `retry`: not the first try (a pooled connection is not
    /// reused: it leads to the endpoint that just failed).
    fn connect(
        &self,
        retry: bool,
        avoid: &[SocketAddr],
    ) -> impl Future<Output = Result<(Self::Connection, SocketAddr), Failure>> + Send;

    fn send(
        &self,
        connection: Self::Connection,
        request: Request<Body>,
    ) -> impl Future<Output = Result<Response<Body>, Failure>> + Send;

    /// Told before every retry (for the metrics).
    fn retrying(&self);
}

/// Sends `request` with `policy`'s retries; the last try's answer or failure.
pub(crate) async fn send<E: Exchange>(
    request: Request<Body>,
    policy: &RetryPolicy,
    exchange: &E,
) -> Result<Response<Body>, Failure> {
    let (parts, body) = request.into_parts();
    let mut body = Replay::of(body).await?;
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut attempt = 0;
    loop {
        let last = attempt == policy.attempts;
        attempt += 1;
        let (connection, endpoint) = match exchange.connect(attempt > 1, &tried).await {
            Ok(connected) => connected,
            Err(failure) if !last && policy.on.retries_failure(&failure) => {
                tracing::debug!(attempt, error = %failure, "retrying: no connection");
                exchange.retrying();
                continue;
            }
            Err(failure) => return Err(failure),
        };
        tried.push(endpoint);
        let Some(this_body) = body.take() else {
            // Not reached: a streamed body ends the loop once sent.
            return Err(Failure::Timeout);
        };
        let sending = exchange.send(connection, rebuild(&parts, this_body));
        let sent = match policy.per_try_timeout {
            Some(limit) => tokio::time::timeout(limit, sending)
                .await
                .unwrap_or(Err(Failure::Timeout)),
            None => sending.await,
        };
        if last || !body.replayable() {
            return sent;
        }
        let retry = match &sent {
            Ok(response) => policy.on.retries_response(response),
            Err(failure) => policy.on.retries_failure(failure),
        };
        if !retry {
            return sent;
        }
        tracing::debug!(
            attempt,
            %endpoint,
            status = sent.as_ref().ok().map(|r| r.status().as_u16()),
            error = sent.as_ref().err().map(tracing::field::display),
            "retrying"
        );
        exchange.retrying();
    }
}

/// A request body as tries need it.
enum Replay {
    /// Whole and small: sent again on every try.
    Buffered(Bytes),
    /// Sent once, on the first try that has a connection.
    Streamed(Option<Body>),
}

impl Replay {
    async fn of(body: Body) -> Result<Self, Failure> {
        if body.is_end_stream() {
            return Ok(Replay::Buffered(Bytes::new()));
        }
        match body.size_hint().exact() {
            Some(length) if length <= REPLAY_LIMIT => {
                Ok(Replay::Buffered(body.collect().await?.to_bytes()))
            }
            _ => Ok(Replay::Streamed(Some(body))),
        }
    }

    fn take(&mut self) -> Option<Body> {
        match self {
            Replay::Buffered(bytes) => Some(
                Full::new(bytes.clone())
                    .map_err(|never| match never {})
                    .boxed(),
            ),
            Replay::Streamed(body) => body.take(),
        }
    }

    fn replayable(&self) -> bool {
        matches!(self, Replay::Buffered(_))
    }
}

/// The request again, with `body` (`Parts` cannot be cloned whole).
fn rebuild(parts: &Parts, body: Body) -> Request<Body> {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn answer(status: u16, grpc_status: Option<&str>) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(code) = grpc_status {
            response
                .headers_mut()
                .insert("grpc-status", code.parse().unwrap());
        }
        response
    }

    #[test]
    fn default_policy_is_istios_without_503() {
        let policy = RetryPolicy::compile(None).unwrap().unwrap();
        assert_eq!(policy.attempts, 2);
        assert!(!policy.on.retries_response(&answer(503, None)));
        assert!(policy.on.retries_response(&answer(200, Some("14"))));
        assert!(policy.on.retries_response(&answer(200, Some("1"))));
        assert!(!policy.on.retries_response(&answer(200, Some("5"))));
        assert!(
            policy
                .on
                .retries_failure(&Failure::Backend(BackendError::Unreachable {
                    service: "default/a".into(),
                    error: edgemesh_proxy::ProxyError::NoEndpoint(edgemesh_model::Frontend {
                        ip: [10, 96, 0, 1].into(),
                        port: 80,
                        protocol: edgemesh_model::Protocol::Tcp,
                    }),
                }))
        );
        assert!(!policy.on.retries_failure(&Failure::Timeout));
    }

    #[test]
    fn zero_attempts_disable_retries() {
        let spec = RetriesSpec {
            attempts: 0,
            per_try_timeout: None,
            retry_on: Some("5xx".into()),
        };
        assert_eq!(RetryPolicy::compile(Some(&spec)), Ok(None));
    }

    #[test]
    fn retry_on_lists_conditions_and_status_codes() {
        let on = RetryOn::parse("gateway-error, 418,retriable-status-codes").unwrap();
        assert!(on.retries_response(&answer(502, None)));
        assert!(on.retries_response(&answer(418, None)));
        assert!(!on.retries_response(&answer(500, None)));
        assert!(on.retries_failure(&Failure::Timeout));
        let on = RetryOn::parse("5xx").unwrap();
        assert!(on.retries_response(&answer(500, None)));
        assert!(!on.retries_response(&answer(409, None)));
        assert!(
            RetryOn::parse("retriable-4xx")
                .unwrap()
                .retries_response(&answer(409, None))
        );
        let on = RetryOn::parse("reset").unwrap();
        assert!(!on.retries_response(&answer(503, None)));
        assert!(on.retries_failure(&Failure::Timeout));
    }

    #[test]
    fn unknown_conditions_are_named() {
        assert_eq!(
            RetryOn::parse("5xx,sometimes").unwrap_err(),
            "\"sometimes\" is not a supported retry condition"
        );
        assert_eq!(
            RetryOn::parse("700").unwrap_err(),
            "700 is not an HTTP status code"
        );
    }
}
