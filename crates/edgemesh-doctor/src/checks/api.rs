//! The API server (or metaServer) the agent lists from: reachable, and does RBAC let the
//! agent's credentials list what it needs.

use edgemesh_kube::source::api::access::{Access, ResourceAccess};

use crate::gather::api::Outcome;
use crate::report::Finding;

const REACH: &str = "api.reach";
const RBAC: &str = "api.rbac";

/// Two findings: reachability, then RBAC.
pub fn access(outcome: Option<&Outcome>) -> Vec<Finding> {
    let Some(outcome) = outcome else {
        return vec![Finding::skip(
            REACH,
            "no API server: the agent serves from a manifests directory only",
        )];
    };
    let target = &outcome.target;
    let reach_fix = match outcome.meta_server {
        true => {
            "is edgecore running with its metaServer on (modules.metaManager.metaServer.enable: true)? curl it from the node; with requireAuthorization check the certificates named in kubeAPIConfig.metaServer.security"
        }
        false => {
            "check the server URL, the network path to it, and the CA and client certificates of the kubeconfig"
        }
    };
    let resources = match &outcome.result {
        Ok(resources) => resources,
        Err(e) => {
            return vec![Finding::fail(
                REACH,
                format!("cannot use {target}: {e}"),
                reach_fix,
            )];
        }
    };
    let failed: Vec<&ResourceAccess> = resources
        .iter()
        .filter(|r| matches!(r.access, Access::Failed(_)))
        .collect();
    let answered = resources.len() - failed.len();
    let reach = match (failed.first(), answered) {
        (None, _) => Finding::pass(REACH, format!("{target} answers")),
        (Some(first), 0) => Finding::fail(
            REACH,
            format!("{target} does not answer: {}", detail(&first.access)),
            reach_fix,
        ),
        (Some(first), _) => Finding::warn(
            REACH,
            format!(
                "{target} answers, but listing {} failed: {}",
                first.resource,
                detail(&first.access)
            ),
            reach_fix,
        ),
    };
    vec![reach, rbac(target, resources)]
}

fn rbac(target: &str, resources: &[ResourceAccess]) -> Finding {
    let forbidden = |required: bool| {
        resources
            .iter()
            .filter(move |r| r.required == required)
            .filter_map(|r| match &r.access {
                Access::Forbidden { grant, .. } => Some((r, grant)),
                _ => None,
            })
    };
    let required: Vec<_> = forbidden(true).collect();
    if let Some((first, _)) = required.first() {
        let names: Vec<&str> = required.iter().map(|(r, _)| r.resource.as_str()).collect();
        let grants: Vec<&str> = required.iter().map(|(_, g)| g.as_str()).collect();
        let message = match &first.access {
            Access::Forbidden { message, .. } => message.as_str(),
            _ => "",
        };
        return Finding::fail(
            RBAC,
            format!(
                "{target} forbids listing {}: {message}",
                names.join(" and ")
            ),
            grants.join("; "),
        );
    }
    if let Some((r, grant)) = forbidden(false).next() {
        return Finding::warn(
            RBAC,
            format!(
                "{} is forbidden: the agent watches core Endpoints instead (works, as EdgeMesh does)",
                r.resource
            ),
            grant.clone(),
        );
    }
    if resources
        .iter()
        .all(|r| matches!(r.access, Access::Failed(_)))
    {
        return Finding::skip(RBAC, "the API does not answer (see api.reach)");
    }
    let allowed: Vec<&str> = resources
        .iter()
        .filter(|r| r.access == Access::Allowed)
        .map(|r| r.resource.as_str())
        .collect();
    Finding::pass(RBAC, format!("may list {}", allowed.join(", ")))
}

fn detail(access: &Access) -> &str {
    match access {
        Access::Failed(e) | Access::NotServed(e) => e,
        Access::Forbidden { message, .. } => message,
        Access::Allowed => "allowed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    const GRANT_SLICES: &str = "grant U get, list and watch on endpointslices in API group discovery.k8s.io (ClusterRole rule: ...)";

    fn outcome(services: Access, endpoints: Access, slices: Access) -> Outcome {
        let r = |resource: &str, required, access| ResourceAccess {
            resource: resource.into(),
            required,
            access,
        };
        Outcome {
            target: "KubeEdge metaServer http://127.0.0.1:10550".into(),
            meta_server: true,
            result: Ok(vec![
                r("services (core API group)", true, services),
                r("endpoints (core API group)", true, endpoints),
                r(
                    "endpointslices in API group discovery.k8s.io",
                    false,
                    slices,
                ),
            ]),
        }
    }

    fn forbidden(grant: &str) -> Access {
        Access::Forbidden {
            message: "services is forbidden: User \"U\" cannot list resource \"services\"".into(),
            grant: grant.into(),
        }
    }

    fn statuses(findings: &[Finding]) -> Vec<Status> {
        findings.iter().map(|f| f.status).collect()
    }

    #[test]
    fn everything_allowed_passes() {
        let f = access(Some(&outcome(
            Access::Allowed,
            Access::Allowed,
            Access::Allowed,
        )));
        assert_eq!(statuses(&f), [Status::Pass, Status::Pass]);
        assert!(f[1].message.contains("endpointslices"));
    }

    #[test]
    fn services_forbidden_fails_naming_the_rule() {
        let grant = "grant U get, list and watch on services (core API group) (ClusterRole rule: apiGroups: [\"\"], resources: [\"services\"], verbs: [\"get\", \"list\", \"watch\"])";
        let f = access(Some(&outcome(
            forbidden(grant),
            Access::Allowed,
            Access::Allowed,
        )));
        assert_eq!(statuses(&f), [Status::Pass, Status::Fail]);
        assert!(
            f[1].message.contains("services (core API group)"),
            "{:?}",
            f[1]
        );
        assert!(f[1].fix.contains("resources: [\"services\"]"), "{:?}", f[1]);
    }

    #[test]
    fn slices_forbidden_only_warns() {
        let f = access(Some(&outcome(
            Access::Allowed,
            Access::Allowed,
            forbidden(GRANT_SLICES),
        )));
        assert_eq!(statuses(&f), [Status::Pass, Status::Warn]);
        assert_eq!(f[1].fix, GRANT_SLICES);
    }

    #[test]
    fn slices_not_served_passes() {
        let f = access(Some(&outcome(
            Access::Allowed,
            Access::Allowed,
            Access::NotServed("isn't supported".into()),
        )));
        assert_eq!(statuses(&f), [Status::Pass, Status::Pass]);
    }

    #[test]
    fn unreachable_fails_with_the_meta_server_hint() {
        let down = || Access::Failed("connection refused".into());
        let f = access(Some(&outcome(down(), down(), down())));
        assert_eq!(statuses(&f), [Status::Fail, Status::Skip]);
        assert!(f[0].message.contains("connection refused"));
        assert!(f[0].fix.contains("metaServer"));
        let partly = access(Some(&outcome(Access::Allowed, down(), Access::Allowed)));
        assert_eq!(statuses(&partly), [Status::Warn, Status::Pass]);
    }

    #[test]
    fn a_client_that_cannot_be_built_fails_and_no_api_skips() {
        let mut o = outcome(Access::Allowed, Access::Allowed, Access::Allowed);
        o.result = Err("kubeconfig /x: bad".into());
        assert_eq!(statuses(&access(Some(&o))), [Status::Fail]);
        assert_eq!(statuses(&access(None)), [Status::Skip]);
    }
}
