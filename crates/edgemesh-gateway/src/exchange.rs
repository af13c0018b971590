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
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("backend connection failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("no response within the route's timeout")]
    Timeout,
}
