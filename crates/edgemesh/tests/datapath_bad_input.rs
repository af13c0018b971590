//! Issue acceptance (bad input): a DestinationRule with a policy edgemesh does not support and
//! a Service with an out-of-range port are skipped with a log line naming them; every other
//! service keeps working — at start and when the bad object arrives live.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use std::time::Duration;

use datapath_support::{Backend, Cluster, HTTP, Port, Svc, destination_rule, tally};
use serde_json::json;

const WEB: &str = "10.96.0.10";
const CART: &str = "10.96.0.11";
const BAD: &str = "10.96.0.12";
const LOG_WITHIN: Duration = Duration::from_secs(3);

#[test]
fn agent_skips_bad_destination_rule_and_bad_port_naming_them() {
    let cluster = Cluster::new("bad", 3);
    let pods = cluster.pod_ips();
    cluster.apply("web.yaml", &Svc::new("web", WEB).endpoints(&pods).yaml());
    cluster.apply(
        "web-rule.yaml",
        &destination_rule("web", json!({"simple": "LEAST_CONN"})),
    );
    let bad_port = Port {
        port: 70000,
        ..HTTP
    };
    let bad = Svc::new("bad", BAD).ports(&[bad_port]).endpoints(&pods);
    cluster.apply("bad.yaml", &bad.yaml());
    cluster.apply(
        "cart.yaml",
        &Svc::new("cart", CART).endpoints(&pods[..1]).yaml(),
    );
    let mut agent = cluster.start_agent(Backend::Nftables, "");

    let rule = agent.wait_log("DestinationRule shop/web", LOG_WITHIN);
    assert!(
        rule.contains("skipping") && rule.contains("LEAST_CONN"),
        "{rule}"
    );
    let port = agent.wait_log("Service shop/bad", LOG_WITHIN);
    assert!(
        port.contains("skipping") && port.contains("70000"),
        "{port}"
    );

    // The rule was skipped, not the service: web is served with the default (round robin).
    let counts = tally(&cluster.curl_many(&format!("http://{WEB}/"), 30, &[]));
    assert!(counts.values().all(|n| *n == 10), "{counts:?}");
    assert_eq!(
        cluster.curl(&format!("http://{CART}/"), &[]).as_deref(),
        Ok("pod-a")
    );
    let set = cluster.nft_set();
    assert!(
        set.contains(WEB) && set.contains(CART) && !set.contains(BAD),
        "{set}"
    );
    assert!(agent.snapshot()["services"].get("shop/bad").is_none());

    // Live: an unsupported consistentHash key arrives while the agent runs.
    let maglev = json!({"consistentHash": {"maglev": {"tableSize": 65537}}});
    cluster.apply("cart-rule.yaml", &destination_rule("cart", maglev));
    let live = agent.wait_log("DestinationRule shop/cart", LOG_WITHIN);
    assert!(
        live.contains("skipping") && live.contains("consistentHash"),
        "{live}"
    );
    assert_eq!(
        cluster.curl(&format!("http://{CART}/"), &[]).as_deref(),
        Ok("pod-a")
    );
    assert_eq!(agent.get("/healthz").0, 200);
}
