//! What a request to the apiserver asks for, decided from its method, path and query alone.
//!
//! Pure: no I/O. The proxy uses it to decide whether a response may be cached and how to answer
//! from the cache offline; the log line uses its verb and resource.

use http::Method;

/// The Kubernetes verb of a request (as in RBAC and the apiserver's audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    Other,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::Other => "other",
        }
    }

    /// Reads never change the cluster; everything else is refused offline.
    pub fn is_read(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// A resource type: `pods` in core `v1`, `deployments` in `apps/v1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    pub resource: String,
}

impl ResourceKey {
    /// YurtHub's directory name: `<resource>.<version>.<group>`, `core` for the core group.
    pub fn dir_name(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("{}.{}.{}", self.resource, self.version, group)
    }

    /// Inverse of [`ResourceKey::dir_name`] (groups may contain dots, resources and versions not).
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let (resource, rest) = name.split_once('.')?;
        let (version, group) = rest.split_once('.')?;
        if resource.is_empty() || version.is_empty() || group.is_empty() {
            return None;
        }
        let group = if group == "core" { "" } else { group };
        Some(Self {
            group: group.to_string(),
            version: version.to_string(),
            resource: resource.to_string(),
        })
    }

    /// `v1` or `apps/v1`, as in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The query parameters the hub acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub allow_bookmarks: bool,
    pub timeout_seconds: Option<u64>,
    pub has_continue: bool,
}

/// A request for a resource (not discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    pub key: ResourceKey,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub query: Query,
}

/// What the request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Resource(Box<ResourceRequest>),
    /// `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`, `/openapi/...`.
    Discovery,
    Other,
}

/// A classified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub verb: Verb,
    pub target: Target,
}

impl RequestInfo {
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Self {
        let query_params = parse_query(query.unwrap_or(""));
        let watch_param = query_params.1;
        let Some(decoded) = canonical_segments(path) else {
            // Whatever the upstream makes of it, the hub neither caches nor answers it.
            return Self {
                verb: Verb::Other,
                target: Target::Other,
            };
        };
        let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
        if is_discovery(&segments) {
            let verb = if method == Method::GET {
                Verb::Get
            } else {
                Verb::Other
            };
            return Self {
                verb,
                target: Target::Discovery,
            };
        }
        let Some((mut request, legacy_watch)) = parse_resource(&segments, query_params.0) else {
            return Self {
                verb: Verb::Other,
                target: Target::Other,
            };
        };
        let watch = watch_param || legacy_watch;
        let verb = verb_of(method, request.name.is_some(), watch);
        if verb == Verb::Watch && request.name.is_some() {
            // A watch of one object is a watch of the collection filtered by name.
            let name = request.name.take().unwrap_or_default();
            request.query.field_selector = Some(format!("metadata.name={name}"));
        }
        Self {
            verb,
            target: Target::Resource(Box::new(request)),
        }
    }

    pub fn resource(&self) -> Option<&ResourceRequest> {
        match &self.target {
            Target::Resource(r) => Some(r),
            _ => None,
        }
    }

    /// Reads of whole objects and discovery: what the cache stores.
    pub fn is_cacheable(&self) -> bool {
        match &self.target {
            Target::Resource(r) => self.verb.is_read() && r.subresource.is_none(),
            Target::Discovery => self.verb == Verb::Get,
            Target::Other => false,
        }
    }

    /// `pods`, `deployments.apps`, or `discovery` for the log line.
    pub fn resource_label(&self) -> String {
        match &self.target {
            Target::Resource(r) => {
                let mut label = r.key.resource.clone();
                if let Some(sub) = &r.subresource {
                    label = format!("{label}/{sub}");
                }
                if !r.key.group.is_empty() {
                    label = format!("{label}.{}", r.key.group);
                }
                label
            }
            Target::Discovery => "discovery".to_string(),
            Target::Other => "other".to_string(),
        }
    }
}

/// The path's segments, percent-decoded, when the path is in the one form the hub classifies:
/// no empty, `.` or `..` segment (an upstream would resolve `/openapi/../api/v1/pods` to pods,
/// which the hub must not take for discovery) and no `/` or NUL hidden in an escape.
fn canonical_segments(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.split('/')
        .map(|raw| {
            let decoded = percent_decode(raw)?;
            let usable =
                !matches!(decoded.as_str(), "" | "." | "..") && !decoded.contains(['/', '\0']);
            usable.then_some(decoded)
        })
        .collect()
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn is_discovery(segments: &[&str]) -> bool {
    match segments {
        ["version"] | ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] => true,
        [first, ..] => *first == "openapi",
        [] => false,
    }
}

fn verb_of(method: &Method, named: bool, watch: bool) -> Verb {
    match *method {
        Method::GET if watch => Verb::Watch,
        Method::GET if named => Verb::Get,
        Method::GET => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        _ => Verb::Other,
    }
}

/// `(group, version, rest)` of `/api/v1/...` and `/apis/<g>/<v>/...`.
fn split_prefix<'a>(segments: &'a [&'a str]) -> Option<(&'a str, &'a str, &'a [&'a str])> {
    match segments {
        ["api", version, rest @ ..] => Some(("", version, rest)),
        ["apis", group, version, rest @ ..] => Some((group, version, rest)),
        _ => None,
    }
}

fn parse_resource(segments: &[&str], query: Query) -> Option<(ResourceRequest, bool)> {
    let (group, version, mut rest) = split_prefix(segments)?;
    let legacy_watch = rest.first() == Some(&"watch");
    if legacy_watch {
        rest = &rest[1..];
    }
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(ns.to_string()), tail),
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(name.to_string()), None),
        [resource, name, sub] => (*resource, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    let key = ResourceKey {
        group: group.to_string(),
        version: version.to_string(),
        resource: resource.to_string(),
    };
    let request = ResourceRequest {
        key,
        namespace,
        name,
        subresource,
        query,
    };
    Some((request, legacy_watch))
}

/// The hub's query parameters and whether `watch` was asked for. A parameter given twice counts
/// with its first value only, as kube-apiserver reads it: were the hub to read another value than
/// the upstream answered, the upstream's answer would be cached under the wrong selector.
fn parse_query(query: &str) -> (Query, bool) {
    let mut parsed = Query::default();
    let mut watch = false;
    let mut seen = std::collections::HashSet::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if !seen.insert(key.clone()) {
            continue;
        }
        let value = value.into_owned();
        match key.as_ref() {
            "labelSelector" if !value.is_empty() => parsed.label_selector = Some(value),
            "fieldSelector" if !value.is_empty() => parsed.field_selector = Some(value),
            "resourceVersion" if !value.is_empty() => parsed.resource_version = Some(value),
            "allowWatchBookmarks" => parsed.allow_bookmarks = is_true(&value),
            "timeoutSeconds" => parsed.timeout_seconds = value.parse().ok(),
            "continue" => parsed.has_continue = !value.is_empty(),
            "watch" => watch = is_true(&value),
            _ => {}
        }
    }
    (parsed, watch)
}

fn is_true(value: &str) -> bool {
    matches!(value, "true" | "1")
}

/// The cache key of a client: its User-Agent up to the first `/` (`kubectl/v1.32 (linux)` →
/// `kubectl`), as YurtHub and edge-hub do.
pub fn agent_name(user_agent: Option<&str>) -> &str {
    let ua = user_agent.unwrap_or("");
    ua.split('/').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, uri: &str) -> RequestInfo {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        RequestInfo::parse(&method, path, query)
    }

    #[test]
    fn verbs_and_resources() {
        let table = [
            (Method::GET, "/api/v1/pods", Verb::List, "pods", None, None),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods",
                Verb::List,
                "pods",
                Some("a"),
                None,
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods/p",
                Verb::Get,
                "pods",
                Some("a"),
                Some("p"),
            ),
            (
                Method::GET,
                "/api/v1/pods?watch=true",
                Verb::Watch,
                "pods",
                None,
                None,
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/a/pods",
                Verb::Watch,
                "pods",
                Some("a"),
                None,
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                Verb::List,
                "namespaces",
                None,
                None,
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a",
                Verb::Get,
                "namespaces",
                None,
                Some("a"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/a/deployments",
                Verb::List,
                "deployments.apps",
                Some("a"),
                None,
            ),
            (
                Method::POST,
                "/api/v1/namespaces/a/configmaps",
                Verb::Create,
                "configmaps",
                Some("a"),
                None,
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/a/configmaps/c",
                Verb::Update,
                "configmaps",
                Some("a"),
                Some("c"),
            ),
            (
                Method::PATCH,
                "/api/v1/nodes/n",
                Verb::Patch,
                "nodes",
                None,
                Some("n"),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/a/pods/p",
                Verb::Delete,
                "pods",
                Some("a"),
                Some("p"),
            ),
        ];
        for (method, uri, verb, label, ns, name) in table {
            let info = parse(method, uri);
            assert_eq!(info.verb, verb, "{uri}");
            assert_eq!(info.resource_label(), label, "{uri}");
            let r = info.resource().unwrap();
            assert_eq!(r.namespace.as_deref(), ns, "{uri}");
            assert_eq!(r.name.as_deref(), name, "{uri}");
        }
    }

    #[test]
    fn cacheability() {
        let table = [
            (Method::GET, "/api/v1/pods", true),
            (Method::GET, "/api/v1/namespaces/a/pods/p/log", false),
            (Method::GET, "/api/v1/namespaces/a/pods/p/status", false),
            (Method::POST, "/api/v1/namespaces/a/pods", false),
            (Method::GET, "/api", true),
            (Method::GET, "/apis/apps/v1", true),
            (Method::GET, "/version", true),
            (Method::GET, "/openapi/v2", true),
            (Method::GET, "/healthz", false),
            (Method::GET, "/", false),
        ];
        for (method, uri, cacheable) in table {
            assert_eq!(parse(method, uri).is_cacheable(), cacheable, "{uri}");
        }
    }

    #[test]
    fn query_parameters() {
        let info = parse(
            Method::GET,
            "/api/v1/pods?labelSelector=app%3Dweb%2Ctier+in+(a)&fieldSelector=metadata.name%3Dx&watch=1&allowWatchBookmarks=true&resourceVersion=12&timeoutSeconds=30",
        );
        let q = &info.resource().unwrap().query;
        assert_eq!(info.verb, Verb::Watch);
        assert_eq!(q.label_selector.as_deref(), Some("app=web,tier in (a)"));
        assert_eq!(q.field_selector.as_deref(), Some("metadata.name=x"));
        assert_eq!(q.resource_version.as_deref(), Some("12"));
        assert!(q.allow_bookmarks);
        assert_eq!(q.timeout_seconds, Some(30));
    }

    /// kube-apiserver takes the first of repeated parameters; so must the hub, or it records the
    /// upstream's answer under another selector than the one answered.
    /// What an upstream would resolve to another path is never classified (so never cached or
    /// answered offline); escapes are decoded as the apiserver decodes them.
    #[test]
    fn only_canonical_paths_are_classified() {
        let others = [
            "/openapi/../api/v1/namespaces/default/pods",
            "/openapi/%2e%2e/api/v1/pods",
            "/api/v1/./pods",
            "//api/v1/pods",
            "/api/v1/pods/",
            "/api/v1/namespaces/a%2Fb/pods",
            "/api/v1/namespaces/a%zz/pods",
            "/api/v1/namespaces/a%00/pods",
        ];
        for uri in others {
            let info = parse(Method::GET, uri);
            assert_eq!(info.target, Target::Other, "{uri}");
            assert!(!info.is_cacheable(), "{uri}");
        }
        let info = parse(Method::GET, "/api/v1/namespaces/def%61ult/pods");
        assert_eq!(
            info.resource().unwrap().namespace.as_deref(),
            Some("default")
        );
        assert_eq!(parse(Method::GET, "/").target, Target::Other);
        assert_eq!(parse(Method::GET, "/openapi/v2").target, Target::Discovery);
    }

    #[test]
    fn repeated_parameters_keep_the_first_value() {
        let info = parse(
            Method::GET,
            "/api/v1/pods?labelSelector=app%3Dnone&labelSelector=app%3Dweb&watch=0&watch=1&labelSelector=",
        );
        let q = &info.resource().unwrap().query;
        assert_eq!(info.verb, Verb::List);
        assert_eq!(q.label_selector.as_deref(), Some("app=none"));
        let info = parse(
            Method::GET,
            "/api/v1/pods?labelSelector=&labelSelector=app%3Dweb",
        );
        assert_eq!(info.resource().unwrap().query.label_selector, None);
    }

    #[test]
    fn watch_of_one_object_becomes_a_name_selector() {
        let info = parse(Method::GET, "/api/v1/watch/namespaces/a/pods/p");
        let r = info.resource().unwrap();
        assert_eq!(info.verb, Verb::Watch);
        assert_eq!(r.name, None);
        assert_eq!(r.query.field_selector.as_deref(), Some("metadata.name=p"));
    }

    #[test]
    fn dir_names_round_trip() {
        for (dir, group) in [
            ("pods.v1.core", ""),
            ("endpointslices.v1.discovery.k8s.io", "discovery.k8s.io"),
        ] {
            let key = ResourceKey::from_dir_name(dir).unwrap();
            assert_eq!(key.group, group);
            assert_eq!(key.dir_name(), dir);
        }
        assert_eq!(ResourceKey::from_dir_name("pods"), None);
        assert_eq!(ResourceKey::from_dir_name("pods.v1."), None);
    }

    #[test]
    fn agent_names() {
        assert_eq!(
            agent_name(Some("kubectl/v1.32.3 (linux/amd64) kubernetes/abc")),
            "kubectl"
        );
        assert_eq!(agent_name(Some("edge-app")), "edge-app");
        assert_eq!(agent_name(None), "");
    }
}
