//! What the double refuses, the way real servers refuse it: RBAC's 403 for forbidden resources,
//! and KubeEdge's metaServer, which serves resource requests but answers every non-resource
//! path other than `/version`, `/healthz`, `/livez` and `/readyz` with 500 "request[PATH::VERB]
//! isn't supported" (KubeEdge before 1.23, edge/pkg/metamanager/metaserver/server.go).

use http::Method;

use super::route::{Route, Target};
use super::status::{ApiError, INTERNAL_ERROR_PREFIX};

/// The subject RBAC names when the double forbids something (EdgeMesh's ServiceAccount).
pub const DEFAULT_USER: &str = "system:serviceaccount:kubeedge:edgemesh-agent";

/// The refusal switches of one double.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Behave like KubeEdge's metaServer for non-resource paths.
    pub meta_server: bool,
    /// Plurals RBAC forbids (every verb), e.g. "endpointslices", "nodes".
    pub forbidden: Vec<String>,
    /// The user named in 403 messages.
    pub user: String,
}

impl Access {
    /// The refusal for this request, if any.
    pub fn check(
        &self,
        route: &Route,
        method: &Method,
        path: &str,
        watch: bool,
    ) -> Option<ApiError> {
        match route {
            Route::Resource(target)
                if self.forbidden.iter().any(|f| f == target.resource.plural) =>
            {
                Some(self.forbidden_error(target, method, watch))
            }
            Route::CoreVersions | Route::Groups | Route::Group(_) | Route::ResourceList { .. }
                if self.meta_server =>
            {
                Some(unsupported(method, path))
            }
            _ => None,
        }
    }

    /// `endpointslices.discovery.k8s.io is forbidden: User "..." cannot list resource
    /// "endpointslices" in API group "discovery.k8s.io" at the cluster scope`.
    fn forbidden_error(&self, target: &Target, method: &Method, watch: bool) -> ApiError {
        let r = target.resource;
        let verb = verb(method, target.name.is_some(), watch);
        let resource = match &target.subresource {
            Some(sub) => format!("{}/{sub}", r.plural),
            None => r.plural.to_owned(),
        };
        let scope = match &target.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let qualified = if r.group.is_empty() {
            r.plural.to_owned()
        } else {
            format!("{}.{}", r.plural, r.group)
        };
        let name = target.name.clone().unwrap_or_default();
        let subject = match &target.name {
            Some(n) => format!("{qualified} \"{n}\""),
            None => qualified,
        };
        let message = format!(
            "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
            self.user, r.group
        );
        ApiError {
            details: Some((r.plural.to_owned(), r.group.to_owned(), name)),
            ..ApiError::new(403, "Forbidden", message)
        }
    }
}

/// The metaServer's answer to a path it does not implement: `apierrors.NewInternalError`.
fn unsupported(method: &Method, path: &str) -> ApiError {
    let cause = format!(
        "request[{path}::{}] isn't supported",
        method.as_str().to_lowercase()
    );
    ApiError::new(
        500,
        "InternalError",
        format!("{INTERNAL_ERROR_PREFIX}{cause}"),
    )
}

/// The RBAC verb of a request.
fn verb(method: &Method, named: bool, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::super::resources::Served;
    use super::super::route::parse;
    use super::*;

    const ALL: Served = Served {
        endpointslices: true,
        istio: true,
    };

    fn access(meta_server: bool, forbidden: &[&str]) -> Access {
        Access {
            meta_server,
            forbidden: forbidden.iter().map(|s| (*s).to_owned()).collect(),
            user: DEFAULT_USER.to_owned(),
        }
    }

    fn check(access: &Access, method: Method, path: &str, watch: bool) -> Option<ApiError> {
        access.check(&parse(path, &ALL), &method, path, watch)
    }

    #[test]
    fn forbidden_resources_read_like_rbac() {
        let a = access(false, &["endpointslices", "nodes"]);
        let e = check(
            &a,
            Method::GET,
            "/apis/discovery.k8s.io/v1/endpointslices",
            false,
        )
        .unwrap();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "endpointslices.discovery.k8s.io is forbidden: User \"system:serviceaccount:kubeedge:edgemesh-agent\" cannot list resource \"endpointslices\" in API group \"discovery.k8s.io\" at the cluster scope"
        );
        let e = check(&a, Method::GET, "/api/v1/nodes/edge-1", false).unwrap();
        assert_eq!(
            e.message,
            "nodes \"edge-1\" is forbidden: User \"system:serviceaccount:kubeedge:edgemesh-agent\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
        );
        let e = check(
            &a,
            Method::GET,
            "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices",
            true,
        )
        .unwrap();
        assert!(e.message.contains("cannot watch resource \"endpointslices\" in API group \"discovery.k8s.io\" in the namespace \"a\""), "{}", e.message);
        assert_eq!(check(&a, Method::GET, "/api/v1/services", false), None);
        assert_eq!(
            check(&a, Method::GET, "/apis/discovery.k8s.io/v1", false),
            None,
            "discovery stays open"
        );
    }

    #[test]
    fn the_meta_server_refuses_discovery_with_500_but_serves_resources() {
        let a = access(true, &[]);
        for path in [
            "/api",
            "/apis",
            "/api/v1",
            "/apis/discovery.k8s.io",
            "/apis/discovery.k8s.io/v1",
        ] {
            let e = check(&a, Method::GET, path, false).unwrap();
            assert_eq!((e.code, e.reason), (500, "InternalError"), "{path}");
            assert_eq!(
                e.message,
                format!("Internal error occurred: request[{path}::get] isn't supported")
            );
            let status = e.to_status();
            assert_eq!(
                status["details"]["causes"][0]["message"],
                format!("request[{path}::get] isn't supported")
            );
        }
        assert_eq!(check(&a, Method::GET, "/version", false), None);
        assert_eq!(check(&a, Method::GET, "/api/v1/services", false), None);
    }
}
