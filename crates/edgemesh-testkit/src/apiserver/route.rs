//! Request paths and query strings, parsed the way kube-apiserver lays out its API.

use std::collections::HashMap;

use super::resources::{Resource, Served};

/// What a path names.
#[derive(Debug, PartialEq)]
pub enum Route {
    Version,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    ResourceList {
        group: String,
        version: String,
    },
    /// A collection or one object of a served resource.
    Resource(Target),
    NotFound,
}

/// A collection (`name` = None) or an object, maybe a subresource of it.
#[derive(Debug, PartialEq)]
pub struct Target {
    pub resource: &'static Resource,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub legacy_watch: bool,
}

/// Parses a request path against what `served` serves. Like kube-apiserver (Go's URL decoding
/// and path cleaning), `%XX` escapes are decoded and `.`/`..` segments resolved first:
/// `/openapi/../api/v1/pods` is the pods list.
pub fn parse(path: &str, served: &Served) -> Route {
    let mut segs: Vec<String> = Vec::new();
    for seg in path.split('/').map(percent_decode) {
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            _ => segs.push(seg),
        }
    }
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group((*group).to_owned()),
        ["api", "v1"] => Route::ResourceList {
            group: String::new(),
            version: "v1".into(),
        },
        ["apis", group, version] => Route::ResourceList {
            group: (*group).into(),
            version: (*version).into(),
        },
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest, served),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest, served),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str], served: &Served) -> Route {
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let namespaced = match rest {
        ["namespaces", ns, plural, tail @ ..] => served
            .find(group, version, plural)
            .filter(|r| r.namespaced)
            .map(|r| (r, Some((*ns).to_owned()), tail)),
        _ => None,
    };
    let found = namespaced.or_else(|| match rest {
        [plural, tail @ ..] => served.find(group, version, plural).map(|r| (r, None, tail)),
        [] => None,
    });
    let Some((resource, namespace, tail)) = found else {
        return Route::NotFound;
    };
    let (name, subresource) = match tail {
        [] => (None, None),
        [name] => (Some((*name).to_owned()), None),
        [name, sub] => (Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Route::NotFound,
    };
    // A namespaced resource's objects are only addressed inside their namespace.
    if name.is_some() && resource.namespaced && namespace.is_none() {
        return Route::NotFound;
    }
    Route::Resource(Target {
        resource,
        version: version.to_owned(),
        namespace,
        name,
        subresource,
        legacy_watch,
    })
}

/// Decoded query parameters (`+` and `%XX` decoded). A parameter given twice keeps its first
/// value, as kube-apiserver reads them (`url.Values` into list options takes element 0).
pub fn query_params(query: Option<&str>) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params
            .entry(percent_decode(k))
            .or_insert_with(|| percent_decode(v));
    }
    params
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Served = Served {
        endpointslices: true,
        istio: true,
    };

    fn target(path: &str) -> Target {
        match parse(path, &ALL) {
            Route::Resource(t) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths_parse() {
        let t = target("/api/v1/services");
        assert_eq!(
            (t.resource.plural, t.namespace, t.name),
            ("services", None, None)
        );
        let t = target("/api/v1/namespaces/prod/services/web");
        assert_eq!(
            (t.namespace.as_deref(), t.name.as_deref()),
            (Some("prod"), Some("web"))
        );
        let t = target("/api/v1/namespaces/prod");
        assert_eq!(
            (t.resource.plural, t.name.as_deref()),
            ("namespaces", Some("prod"))
        );
        let t = target("/api/v1/namespaces");
        assert_eq!((t.resource.plural, t.name), ("namespaces", None));
        let t = target("/api/v1/nodes/edge-1/status");
        assert_eq!(
            (t.name.as_deref(), t.subresource.as_deref()),
            (Some("edge-1"), Some("status"))
        );
        let t = target("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices");
        assert_eq!(t.resource.plural, "endpointslices");
        let t = target("/apis/networking.istio.io/v1alpha3/destinationrules");
        assert_eq!(t.version, "v1alpha3");
        let t = target("/api/v1/watch/namespaces/a/pods");
        assert!(t.legacy_watch);
    }

    #[test]
    fn unknown_or_unserved_paths_are_not_found() {
        let old = Served {
            endpointslices: false,
            istio: false,
        };
        assert_eq!(
            parse("/apis/discovery.k8s.io/v1/endpointslices", &old),
            Route::NotFound
        );
        assert_eq!(parse("/api/v1/widgets", &ALL), Route::NotFound);
        assert_eq!(parse("/api/v2/services", &ALL), Route::NotFound);
        assert_eq!(parse("/api/v1/services/web", &ALL), Route::NotFound);
        assert_eq!(parse("/", &ALL), Route::NotFound);
    }

    #[test]
    fn query_values_are_decoded() {
        let q = query_params(Some(
            "labelSelector=app%20in%20%28a%2Cb%29&watch=1&x=a+b&bad=%zz",
        ));
        assert_eq!(q["labelSelector"], "app in (a,b)");
        let repeated = query_params(Some("labelSelector=a%3D1&labelSelector=a%3D2"));
        assert_eq!(repeated["labelSelector"], "a=1", "the first value wins");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["x"], "a b");
        assert_eq!(q["bad"], "%zz");
    }
}
