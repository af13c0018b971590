//! Kubernetes `Status` bodies for the answers the hub gives itself.

use bytes::Bytes;
use http::StatusCode;

/// A `Status` object (`kind: Status`, `status: Failure`) as JSON.
pub fn status_body(code: StatusCode, reason: &str, message: &str) -> Bytes {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_status() {
        let body = status_body(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "offline",
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["code"], 503);
    }
}
