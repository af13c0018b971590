//! Hostile clients against the hub and its offline cache (issue #18, items 10 and 14): a client
//! with other credentials must not be able to change what the cache answers another client
//! offline, and a path the upstream resolves differently must not be cached as something else.

mod support;

use support::*;

const OWNER: &str = "owner-token";
const OTHER: &str = "other-token";

/// kube-apiserver reads the first of repeated parameters. A hub reading the last one recorded the
/// upstream's empty answer for `app=none` as the complete list of `app=web` and deleted the cached
/// pods: offline, the owner got an empty list and 404 for its own pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_selector_cannot_poison_the_cache() {
    let linked = linked_hub("kubectl", |_| {}).await;
    let LinkedHub {
        relay, hub, base, ..
    } = &linked;
    let web = format!("{base}/api/v1/pods?labelSelector=app%3Dweb");
    let (code, body) = get(&web, "kubectl", Some(OWNER)).await;
    assert_eq!(
        (code, names(&json(&body))),
        (200, vec!["web-2".into(), "web-1".into()])
    );
    let (code, _) = get(
        &format!("{base}/api/v1/namespaces/prod/pods/web-1"),
        "kubectl",
        Some(OWNER),
    )
    .await;
    assert_eq!(code, 200);

    let poison = format!("{base}/api/v1/pods?labelSelector=app%3Dnone&labelSelector=app%3Dweb");
    let (code, body) = get(&poison, "kubectl", Some(OTHER)).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        names(&json(&body)).is_empty(),
        "the upstream answered for app=none: {body}"
    );

    relay.cut();
    wait_online(hub, false).await;
    let (code, body) = get(&web, "kubectl", Some(OWNER)).await;
    assert_eq!(
        (code, names(&json(&body))),
        (200, vec!["web-2".into(), "web-1".into()]),
        "{body}"
    );
    let (code, body) = get(
        &format!("{base}/api/v1/namespaces/prod/pods/web-1"),
        "kubectl",
        Some(OWNER),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

/// `/openapi/../api/v1/...` is pods to an upstream that resolves the path, but began with
/// `openapi` (discovery, which the hub serves offline without credentials) to a hub that did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_the_upstream_resolves_is_never_cached_as_discovery() {
    let linked = linked_hub("kubectl", |_| {}).await;
    let LinkedHub {
        relay,
        hub,
        base,
        cache: dir,
        ..
    } = &linked;
    let sneaky = [
        "/openapi/../api/v1/namespaces/prod/configmaps/settings",
        "/openapi/%2e%2e/api/v1/namespaces/prod/configmaps/settings",
    ];
    for path in sneaky {
        get(&format!("{base}{path}"), "kubectl", Some(OWNER)).await;
    }
    relay.cut();
    wait_online(hub, false).await;
    for path in sneaky {
        for token in [None, Some(OWNER)] {
            let (code, body) = get(&format!("{base}{path}"), "kubectl", token).await;
            assert_ne!(code, 200, "{path} answered offline ({token:?}): {body}");
            assert!(!body.contains("\"settings\""), "{path}: {body}");
        }
    }
    assert!(
        !dir.path().join("kubectl/_discovery").exists()
            || std::fs::read_dir(dir.path().join("kubectl/_discovery"))
                .unwrap()
                .count()
                == 0,
        "something was stored as discovery"
    );
}
