//! The API checks with the agent's real client against the test kit's apiserver double: what
//! RBAC forbids is named with the rule to grant; a server that is not there is unreachable.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

use std::time::Duration;

use edgemesh_doctor::checks::api::access;
use edgemesh_doctor::gather::api::probe;
use edgemesh_doctor::report::{Finding, Status};
use edgemesh_kube::target::ApiTarget;
use edgemesh_testkit::apiserver::{ApiServer, Builder};

fn findings(url: &str) -> Vec<Finding> {
    let target = ApiTarget::Url(url.to_owned());
    access(Some(&probe(&target, Duration::from_secs(2))))
}

fn run(builder: Builder) -> Vec<Finding> {
    let api = builder.start().unwrap();
    findings(&api.url())
}

fn statuses(findings: &[Finding]) -> Vec<Status> {
    findings.iter().map(|f| f.status).collect()
}

#[test]
fn everything_allowed_passes() {
    let f = run(ApiServer::builder());
    assert_eq!(statuses(&f), [Status::Pass, Status::Pass], "{f:#?}");
    assert!(f[1].message.contains("endpointslices"), "{f:#?}");
}

#[test]
fn forbidden_services_fail_naming_the_user_and_the_rule() {
    let f = run(ApiServer::builder().forbid("services"));
    assert_eq!(statuses(&f), [Status::Pass, Status::Fail], "{f:#?}");
    assert!(f[1].message.contains("services (core API group)"), "{f:#?}");
    assert!(
        f[1].fix
            .contains("system:serviceaccount:kubeedge:edgemesh-agent"),
        "{f:#?}"
    );
    assert!(f[1].fix.contains("resources: [\"services\"]"), "{f:#?}");
}

#[test]
fn forbidden_endpointslices_only_warn() {
    let f = run(ApiServer::builder().forbid("endpointslices"));
    assert_eq!(statuses(&f), [Status::Pass, Status::Warn], "{f:#?}");
    assert!(f[1].fix.contains("discovery.k8s.io"), "{f:#?}");
}

#[test]
fn a_server_without_endpointslices_passes() {
    let f = run(ApiServer::builder().endpointslices(false));
    assert_eq!(statuses(&f), [Status::Pass, Status::Pass], "{f:#?}");
}

#[test]
fn nobody_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let f = findings(&url);
    assert_eq!(statuses(&f), [Status::Fail, Status::Skip], "{f:#?}");
    assert!(f[0].message.contains("does not answer"), "{f:#?}");
}
