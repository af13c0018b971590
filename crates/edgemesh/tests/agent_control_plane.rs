//! Issue #18 acceptance (agent control plane): a real `edgemesh agent` against the apiserver
//! double restarted (objects kept, resourceVersions expired) and gaining Istio's CRD at run time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod common;

use std::time::{Duration, Instant};

use common::{Agent, has_service, netns, service_json};
use edgemesh_testkit::apiserver::ApiServer;
use serde_json::Value;

/// A change made right after an apiserver restart must be in the Snapshot within this.
const AFTER_RESTART: Duration = Duration::from_secs(2);
/// The agent asks discovery again every 10 s (`CRD_RECHECK`); a watch and a rebuild on top.
const CRD_PICKUP: Duration = Duration::from_secs(12);

/// How long until `check` holds (polling every 20 ms), or `None` after `limit`.
fn time_until(agent: &Agent, limit: Duration, check: impl Fn(&Value) -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check(&agent.snapshot()) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn agent_sees_a_change_made_right_after_an_apiserver_restart_within_2s() {
    let ns = netns("rst");
    let api = common::api_without_bookmarks(&ns);
    api.apply(service_json("shop", "web", "10.96.0.10", 80))
        .unwrap();
    let agent = Agent::start(ns, &["--master", &api.url()]).ready();
    let mut lags = Vec::new();
    // A restart closes connections unanswered; the middle round is an outage answering 503
    // (a starting apiserver, a load balancer in front).
    // Not whole seconds: the agent's 1 s retries must not be in phase with the restart.
    for (round, down) in [2.5, 6.3, 11.7].into_iter().enumerate() {
        if round == 1 {
            api.set_available(false);
            std::thread::sleep(Duration::from_secs_f64(down));
            api.compact();
            api.set_available(true);
        } else {
            api.restart(Duration::from_secs_f64(down));
        }
        let name = format!("after-{round}");
        let ip = format!("10.96.0.{}", 20 + round);
        api.apply(service_json("shop", &name, &ip, 80)).unwrap();
        let key = format!("shop/{name}");
        let lag = time_until(&agent, Duration::from_secs(70), |s| has_service(s, &key));
        eprintln!("apiserver down {down} s: change seen after {lag:?}");
        lags.push((down, lag));
    }
    let logs = agent.logs();
    assert!(
        lags.iter()
            .all(|(_, lag)| lag.is_some_and(|l| l <= AFTER_RESTART)),
        "a change made right after a restart must arrive within {AFTER_RESTART:?}: {lags:?}\n--- agent log:\n{logs}"
    );
    assert!(logs.contains("retry_in="), "{logs}");
}

#[test]
fn agent_picks_up_a_destination_rule_crd_installed_at_run_time() {
    let ns = netns("crd");
    let api = ApiServer::builder().istio(false).start_in(&ns).unwrap();
    api.apply(service_json("shop", "web", "10.96.0.10", 80))
        .unwrap();
    let agent = Agent::start(ns, &["--master", &api.url()]).ready();
    let policy = |s: &Value| s["services"]["shop/web"]["lbPolicy"].clone();
    assert_eq!(policy(&agent.snapshot()), "roundRobin");

    api.serve_istio(true);
    api.apply(serde_json::json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"host": "web", "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}
    }))
    .unwrap();
    let took = time_until(&agent, CRD_PICKUP, |s| policy(s) == "random");
    eprintln!("DestinationRule CRD served at run time: rule in effect after {took:?}");
    let logs = agent.logs();
    assert!(
        took.is_some(),
        "the rule must take effect within {CRD_PICKUP:?}: {}\n--- agent log:\n{logs}",
        policy(&agent.snapshot())
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("Istio kind served now") && l.contains("kind=DestinationRule")),
        "{logs}"
    );
}
