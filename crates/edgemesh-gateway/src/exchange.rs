//! What one try of a proxied HTTP request is made of, shared by [`crate::http`] (which sends and
//! answers) and [`crate::retry`] (which decides whether to try again): the body type both pass
//! along and why a try failed.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

use crate::backend::BackendError;

/// A request or response body as the gateway passes it on (the downstream's, a replayed copy,
/// or a local answer).
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Why one try of a request got no response.
///
/// Each cause is printed once (docs/architecture.md, "Errors and logs"): `Backend` is the
/// backend's error itself, and `Http` names hyper's error in its message without making it the
/// `source` as well.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("backend connection failed: {0}")]
    Http(hyper::Error),
    #[error("no response within the route's timeout")]
    Timeout,
}

/// `?` on hyper's results; the error stays in the message only (see [`Failure`]).
impl From<hyper::Error> for Failure {
    fn from(error: hyper::Error) -> Self {
        Failure::Http(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `{e:#}` (anyhow's alternate form) prints: the error and each source, joined by ": ".
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut next = error.source();
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }

    #[test]
    fn a_backend_failure_prints_its_cause_once() {
        let failure = Failure::from(BackendError::NoService("default/a".into()));
        assert_eq!(failure.to_string(), "Service default/a not found");
        assert_eq!(chain(&failure), "Service default/a not found");
    }

    #[tokio::test]
    async fn an_http_failure_prints_its_cause_once() {
        use hyper_util::rt::TokioIo;
        use tokio::io::AsyncWriteExt;

        // A real hyper::Error: a server connection fed bytes that are not HTTP.
        let (mut client, server) = tokio::io::duplex(1024);
        client
            .write_all(b"\x00\x01 not http\r\n\r\n")
            .await
            .unwrap();
        let service = hyper::service::service_fn(|_request| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
        });
        let error = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service)
            .await
            .unwrap_err();
        let cause = error.to_string();

        let failure = Failure::from(error);
        let printed = chain(&failure);
        assert_eq!(printed, format!("backend connection failed: {cause}"));
        assert_eq!(printed.matches(cause.as_str()).count(), 1, "{printed}");
    }
}
