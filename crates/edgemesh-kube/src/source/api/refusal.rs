//! Which API errors are a lasting refusal (the agent must do without the resource) and which
//! are passing (retry): RBAC's 403, a 404, and KubeEdge's metaServer answering 500 "request[...]
//! isn't supported" for the paths it does not implement.

use std::fmt;

use kube::runtime::watcher;

/// A lasting "no" from the server for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 403: RBAC does not allow it; the message names the user.
    Forbidden(String),
    /// 404, or the metaServer's 500 "isn't supported": the server does not serve it.
    Unsupported(String),
}

impl Refusal {
    /// The server's message.
    pub fn message(&self) -> &str {
        match self {
            Refusal::Forbidden(m) | Refusal::Unsupported(m) => m,
        }
    }
}

/// What KubeEdge's metaServer says for a path it does not implement (its status is 500).
const META_SERVER_UNSUPPORTED: &str = "isn't supported";

/// `Some` when `code`/`message` mean the server will keep saying no; `None` for errors worth
/// retrying (outages, timeouts, 401, 429, other 5xx).
pub fn classify_status(code: u16, message: &str) -> Option<Refusal> {
    match code {
        403 => Some(Refusal::Forbidden(message.to_owned())),
        404 => Some(Refusal::Unsupported(message.to_owned())),
        500 if message.contains(META_SERVER_UNSUPPORTED) => {
            Some(Refusal::Unsupported(message.to_owned()))
        }
        _ => None,
    }
}

/// [`classify_status`] of a client error; transport errors are never refusals.
pub fn classify(error: &kube::Error) -> Option<Refusal> {
    match error {
        kube::Error::Api(status) => classify_status(status.code, &status.message),
        _ => None,
    }
}

/// [`classify`] of a watcher error (initial list, watch start, or an ERROR event).
pub fn classify_watch(error: &watcher::Error) -> Option<Refusal> {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => classify(e),
        watcher::Error::WatchError(status) => classify_status(status.code, &status.message),
        watcher::Error::NoResourceVersion => None,
    }
}

/// `error` with its causes ("...: client error (Connect): invalid peer certificate: ..."): a
/// TLS or connection failure is only named by its innermost source.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// A resource the agent reads: what to grant when RBAC forbids it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// API group ("" = core).
    pub group: &'static str,
    pub resource: &'static str,
}

impl Grant {
    pub const fn new(group: &'static str, resource: &'static str) -> Grant {
        Grant { group, resource }
    }

    /// "grant system:serviceaccount:kubeedge:edgemesh-agent get, list and watch on ..."; the
    /// subject is read from RBAC's message (`User "..." cannot ...`) when it names one.
    pub fn hint(&self, refusal: &Refusal) -> String {
        let subject = forbidden_user(refusal.message())
            .map_or_else(|| "the agent's ServiceAccount".to_owned(), str::to_owned);
        format!(
            "grant {subject} get, list and watch on {self} (ClusterRole rule: apiGroups: [\"{}\"], resources: [\"{}\"], verbs: [\"get\", \"list\", \"watch\"])",
            self.group, self.resource
        )
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{} (core API group)", self.resource)
        } else {
            write!(f, "{} in API group {}", self.resource, self.group)
        }
    }
}

/// The user RBAC names in `... is forbidden: User "NAME" cannot ...`.
fn forbidden_user(message: &str) -> Option<&str> {
    let rest = message.split_once("User \"")?.1;
    rest.split_once('"').map(|(user, _)| user)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RBAC: &str = "endpointslices.discovery.k8s.io is forbidden: User \"system:serviceaccount:kubeedge:edgemesh-agent\" cannot list resource \"endpointslices\" in API group \"discovery.k8s.io\" at the cluster scope";
    const META: &str =
        "Internal error occurred: request[/apis/discovery.k8s.io/v1::get] isn't supported";

    #[test]
    fn statuses_are_classified() {
        let forbidden = || Some(Refusal::Forbidden(RBAC.into()));
        let unsupported = |m: &str| Some(Refusal::Unsupported(m.into()));
        let cases: [(u16, &str, Option<Refusal>); 9] = [
            (403, RBAC, forbidden()),
            (
                404,
                "the server could not find the requested resource",
                unsupported("the server could not find the requested resource"),
            ),
            (500, META, unsupported(META)),
            (
                500,
                "Internal error occurred: etcdserver: request timed out",
                None,
            ),
            (401, "Unauthorized", None),
            (429, "too many requests", None),
            (
                503,
                "the server is currently unable to handle the request",
                None,
            ),
            (504, "timeout", None),
            (410, "too old resource version", None),
        ];
        for (code, message, want) in cases {
            assert_eq!(classify_status(code, message), want, "{code} {message}");
        }
    }

    #[test]
    fn watcher_errors_are_classified_by_their_status() {
        let status = |code: u16, message: &str| {
            kube::core::Status::failure(message, "Reason")
                .with_code(code)
                .boxed()
        };
        let api = |code, message| kube::Error::Api(status(code, message));
        let cases = [
            (watcher::Error::InitialListFailed(api(403, RBAC)), true),
            (
                watcher::Error::WatchStartFailed(api(404, "not found")),
                true,
            ),
            (watcher::Error::WatchFailed(api(500, META)), true),
            (watcher::Error::WatchError(status(403, RBAC)), true),
            (watcher::Error::InitialListFailed(api(503, "down")), false),
            (watcher::Error::NoResourceVersion, false),
        ];
        for (error, refused) in cases {
            assert_eq!(classify_watch(&error).is_some(), refused, "{error}");
        }
        let transport = kube::Error::LinesCodecMaxLineLengthExceeded;
        assert_eq!(classify(&transport), None);
    }

    #[test]
    fn the_hint_names_the_user_and_the_rule() {
        let slices = Grant {
            group: "discovery.k8s.io",
            resource: "endpointslices",
        };
        let hint = slices.hint(&Refusal::Forbidden(RBAC.into()));
        assert_eq!(
            hint,
            "grant system:serviceaccount:kubeedge:edgemesh-agent get, list and watch on endpointslices in API group discovery.k8s.io (ClusterRole rule: apiGroups: [\"discovery.k8s.io\"], resources: [\"endpointslices\"], verbs: [\"get\", \"list\", \"watch\"])"
        );
        let nodes = Grant {
            group: "",
            resource: "nodes",
        };
        let hint = nodes.hint(&Refusal::Forbidden("forbidden".into()));
        assert!(
            hint.starts_with(
                "grant the agent's ServiceAccount get, list and watch on nodes (core API group)"
            ),
            "{hint}"
        );
    }

    #[test]
    fn a_description_carries_every_cause_once() {
        let io = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let outer = watcher::Error::InitialListFailed(kube::Error::ReadEvents(io));
        let text = describe(&outer);
        assert!(
            text.starts_with("failed to perform initial object list"),
            "{text}"
        );
        assert_eq!(text.matches("UnknownIssuer").count(), 1, "{text}");
    }
}
