//! `Status` bodies, the way kube-apiserver reports failures.

use serde_json::{Value, json};

/// A failed request: becomes a `Status` body with the same code, reason and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// (resource plural, group, name) for `details`.
    pub details: Option<(String, String, String)>,
}

/// How `apierrors.NewInternalError` prefixes its cause.
pub const INTERNAL_ERROR_PREFIX: &str = "Internal error occurred: ";

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(plural: &str, group: &str, name: &str) -> Self {
        let qualified = qualified(plural, group);
        ApiError {
            details: Some((plural.to_owned(), group.to_owned(), name.to_owned())),
            ..Self::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
        }
    }

    pub fn already_exists(plural: &str, group: &str, name: &str) -> Self {
        let qualified = qualified(plural, group);
        ApiError {
            details: Some((plural.to_owned(), group.to_owned(), name.to_owned())),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{qualified} \"{name}\" already exists"),
            )
        }
    }

    pub fn conflict(plural: &str, group: &str, name: &str) -> Self {
        let qualified = qualified(plural, group);
        ApiError {
            details: Some((plural.to_owned(), group.to_owned(), name.to_owned())),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some((kind, group, name)) = &self.details {
            let mut details = json!({"name": name, "kind": kind});
            if !group.is_empty() {
                details["group"] = json!(group);
            }
            status["details"] = details;
        }
        // An internal error carries its cause, as NewInternalError does.
        if let Some(cause) = self.message.strip_prefix(INTERNAL_ERROR_PREFIX) {
            status["details"] = json!({"causes": [{"message": cause}]});
        }
        status
    }
}

fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_reads_like_upstream() {
        let s = ApiError::not_found("services", "", "web").to_status();
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["message"], "services \"web\" not found");
        assert_eq!(s["details"]["name"], "web");
        let s = ApiError::not_found("destinationrules", "networking.istio.io", "r").to_status();
        assert_eq!(
            s["message"],
            "destinationrules.networking.istio.io \"r\" not found"
        );
        assert_eq!(s["details"]["group"], "networking.istio.io");
    }
}
