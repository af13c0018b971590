//! The answers the hub gives itself, and who answered a request.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use crate::status::status_body;
use crate::upstream::Body;

/// Who answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedBy {
    Upstream,
    Cache,
    Hub,
}

impl ServedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ServedBy::Upstream => "upstream",
            ServedBy::Cache => "cache",
            ServedBy::Hub => "hub",
        }
    }
}

/// A `Status` response the hub gives itself.
pub fn reply(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(code, status_body(code, reason, message))
}

pub fn json_response(code: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
