//! CertificateSigningRequests over the hub's own apiserver client (`upstream::client`, the
//! `--token-file` identity): create, get, and a watch on one object.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;

use super::BootstrapError;
use super::csr::API_GROUP;
use crate::creds::OwnToken;
use crate::upstream::{Body, HttpClient, Upstream, empty_body};

const COLLECTION: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// The apiserver(s) the hub asks, in failover order.
#[derive(Debug, Clone)]
pub struct Api {
    client: HttpClient,
    upstreams: Arc<Vec<Upstream>>,
    token: OwnToken,
    /// Index of the upstream that answered last: later requests go there first.
    preferred: Arc<AtomicUsize>,
    /// Bound of one request (a watch adds its own duration).
    timeout: Duration,
}

/// How one watch ended without the awaited change.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchEnd {
    /// The stream ended (its timeout, a closed connection, a 410 ERROR event): get and watch
    /// again.
    Ended,
    /// The CSR was deleted.
    Deleted,
}

impl Api {
    pub fn new(
        client: HttpClient,
        upstreams: Arc<Vec<Upstream>>,
        token: OwnToken,
        timeout: Duration,
    ) -> Self {
        Api {
            client,
            upstreams,
            token,
            preferred: Arc::new(AtomicUsize::new(0)),
            timeout,
        }
    }

    /// Creates the CSR; returns the stored object (with its generated name).
    pub async fn create(&self, obj: &Value) -> Result<Value, BootstrapError> {
        let body = Bytes::from(obj.to_string());
        let response = self
            .send(Method::POST, COLLECTION, Some(body), self.timeout)
            .await?;
        self.json(response, "create").await
    }

    pub async fn get(&self, name: &str) -> Result<Value, BootstrapError> {
        let path = format!("{COLLECTION}/{name}");
        let response = self.send(Method::GET, &path, None, self.timeout).await?;
        self.json(response, "get").await
    }

    /// Watches CSR `name` from `resource_version` for up to `duration`; returns the first
    /// object `done` accepts.
    pub async fn watch(
        &self,
        name: &str,
        resource_version: &str,
        duration: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Result<Value, WatchEnd>, BootstrapError> {
        let seconds = duration.as_secs().max(1);
        let path = format!(
            "{COLLECTION}?watch=true&fieldSelector=metadata.name%3D{name}&resourceVersion={resource_version}&timeoutSeconds={seconds}"
        );
        // The server ends the stream after `seconds`; the client allows a little more.
        let bound = Duration::from_secs(seconds) + self.timeout;
        let response = self.send(Method::GET, &path, None, self.timeout).await?;
        if !response.status().is_success() {
            return Err(self.refusal(response, "watch").await);
        }
        let mut body = response.into_body();
        let mut buffer = Vec::new();
        let reading = async {
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buffer.extend_from_slice(&data);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    match event["type"].as_str() {
                        Some("ADDED" | "MODIFIED") if done(&event["object"]) => {
                            return Ok(event["object"].clone());
                        }
                        Some("DELETED") => return Err(WatchEnd::Deleted),
                        Some("ERROR") => return Err(WatchEnd::Ended),
                        _ => {}
                    }
                }
            }
            Err(WatchEnd::Ended)
        };
        Ok(tokio::time::timeout(bound, reading)
            .await
            .unwrap_or(Err(WatchEnd::Ended)))
    }

    /// Sends to the preferred upstream, then the others in order while they cannot be reached.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, BootstrapError> {
        let count = self.upstreams.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = String::from("no --server-addr");
        for index in (0..count).map(|i| (first + i) % count) {
            let upstream = &self.upstreams[index];
            let request = self.request(upstream, &method, path, body.clone())?;
            match tokio::time::timeout(timeout, self.client.request(request)).await {
                Ok(Ok(response)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Ok(Err(e)) => last_error = format!("{}: {e}", upstream.url),
                Err(_) => last_error = format!("{}: no answer within {timeout:?}", upstream.url),
            }
        }
        Err(BootstrapError::Unreachable(last_error))
    }

    fn request(
        &self,
        upstream: &Upstream,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Request<Body>, BootstrapError> {
        let uri = upstream
            .uri(path)
            .map_err(|e| BootstrapError::Config(format!("request path {path}: {e}")))?;
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::ACCEPT, "application/json");
        if let Some(token) = self.token.header() {
            builder = builder.header(header::AUTHORIZATION, token);
        }
        let body: Body = match body {
            Some(bytes) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Full::new(bytes)
                    .map_err(|never| match never {})
                    .boxed_unsync()
            }
            None => empty_body(),
        };
        builder
            .body(body)
            .map_err(|e| BootstrapError::Config(format!("request {path}: {e}")))
    }

    /// The JSON body of a successful answer, or the refusal.
    async fn json(
        &self,
        response: http::Response<Incoming>,
        verb: &'static str,
    ) -> Result<Value, BootstrapError> {
        if !response.status().is_success() {
            return Err(self.refusal(response, verb).await);
        }
        let body = self.body(response).await?;
        serde_json::from_slice(&body).map_err(|e| BootstrapError::Rejected {
            verb,
            code: 200,
            message: format!("the answer is not JSON: {e}"),
        })
    }

    async fn body(&self, response: http::Response<Incoming>) -> Result<Bytes, BootstrapError> {
        match tokio::time::timeout(self.timeout, response.into_body().collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) => Err(BootstrapError::Unreachable(format!(
                "reading the answer: {e}"
            ))),
            Err(_) => Err(BootstrapError::Unreachable(format!(
                "the answer did not finish within {:?}",
                self.timeout
            ))),
        }
    }

    /// The error for a non-2xx answer, with the apiserver's `Status` message.
    async fn refusal(
        &self,
        response: http::Response<Incoming>,
        verb: &'static str,
    ) -> BootstrapError {
        let status = response.status();
        let body = self.body(response).await.unwrap_or_default();
        let message = status_message(&body);
        refusal(status, verb, message)
    }
}

fn status_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

fn refusal(status: StatusCode, verb: &'static str, message: String) -> BootstrapError {
    match status {
        StatusCode::FORBIDDEN => BootstrapError::Forbidden { verb, message },
        StatusCode::UNAUTHORIZED => BootstrapError::Unauthorized(message),
        _ => BootstrapError::Rejected {
            verb,
            code: status.as_u16(),
            message,
        },
    }
}

/// `certificatesigningrequests.certificates.k8s.io`, as RBAC and error messages name it.
pub fn resource() -> String {
    format!("certificatesigningrequests.{API_GROUP}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_permission() {
        let body = br#"{"kind":"Status","message":"certificatesigningrequests.certificates.k8s.io is forbidden: User \"x\" cannot create resource"}"#;
        let e = refusal(StatusCode::FORBIDDEN, "create", status_message(body)).to_string();
        assert!(e.contains("verb \"create\""), "{e}");
        assert!(e.contains("certificatesigningrequests"), "{e}");
        assert!(e.contains("cannot create resource"), "{e}");
        let e = refusal(
            StatusCode::UNAUTHORIZED,
            "get",
            status_message(b"Unauthorized\n"),
        );
        assert!(e.to_string().contains("--token-file"), "{e}");
        let e = refusal(StatusCode::UNPROCESSABLE_ENTITY, "create", "bad".into());
        assert!(e.to_string().contains("422"), "{e}");
    }
}
