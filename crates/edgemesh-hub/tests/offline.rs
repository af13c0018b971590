//! The hub against the apiserver double: online passthrough and caching, then the link cut and
//! every offline rule, then the link restored.

mod support;

use std::time::Duration;

use support::*;

const TOKEN: &str = "token-a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_then_offline_answers_from_cache_with_the_offline_rules() {
    let linked = linked_hub("kubectl", |_| {}).await;
    let LinkedHub {
        api,
        relay,
        hub,
        base,
        cache: dir,
        ..
    } = &linked;

    // Online: answers come from upstream and are cached for kubectl.
    let (code, body) = get(
        &format!("{base}/api/v1/pods?limit=500"),
        "kubectl/v1.32",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(names(&json(&body)), ["web-2", "db-1", "web-1"]);
    let (code, _) = get(
        &format!("{base}/api/v1/namespaces/prod/configmaps/settings"),
        "kubectl",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    let (code, _) = get(&format!("{base}/api"), "kubectl", Some(TOKEN)).await;
    assert_eq!(code, 200);
    let (code, _) = get(&format!("{base}/api/v1/pods"), "other-app", Some(TOKEN)).await;
    assert_eq!(code, 200);
    assert!(
        api.requests().iter().any(|r| r == "GET /api/v1/pods"),
        "limit dropped for a cached agent: {:?}",
        api.requests()
    );

    // YurtHub's layout on disk, each file a complete object.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let file = dir.path().join("kubectl/pods.v1.core/prod/web-1");
    while !file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never written",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let on_disk = json(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(on_disk["kind"], "Pod");
    assert!(
        !dir.path().join("other-app").exists(),
        "uncached agent stored"
    );

    relay.cut();
    wait_online(hub, false).await;

    // Offline: lists with selectors, gets, discovery from the cache.
    let (code, body) = get(
        &format!("{base}/api/v1/pods?labelSelector=app%3Dweb"),
        "kubectl",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(names(&json(&body)), ["web-2", "web-1"]);
    let (code, body) = get(
        &format!("{base}/api/v1/namespaces/prod/pods?fieldSelector=metadata.name%3Ddb-1"),
        "kubectl",
        Some(TOKEN),
    )
    .await;
    assert_eq!((code, names(&json(&body))), (200, vec!["db-1".to_string()]));
    let (code, body) = get(
        &format!("{base}/api/v1/namespaces/prod/pods/web-1"),
        "kubectl",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (code, json(&body)["metadata"]["name"].as_str()),
        (200, Some("web-1"))
    );
    let (code, _) = get(
        &format!("{base}/api/v1/namespaces/prod/pods/gone"),
        "kubectl",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 404);
    let (code, body) = get(&format!("{base}/api"), "kubectl", Some(TOKEN)).await;
    assert_eq!(
        (code, json(&body)["kind"].as_str()),
        (200, Some("APIVersions"))
    );

    // Never cached → an error, never an empty list.
    let (code, body) = get(&format!("{base}/api/v1/services"), "kubectl", Some(TOKEN)).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(json(&body)["kind"], "Status");
    let (code, body) = get(
        &format!("{base}/api/v1/namespaces/prod/configmaps"),
        "kubectl",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        code, 503,
        "only one configmap was fetched, a list was never seen: {body}"
    );

    // Other clients get nothing.
    let (code, body) = get(&format!("{base}/api/v1/pods"), "other-app", Some(TOKEN)).await;
    assert!(
        code == 503 && body.contains("cache_agents"),
        "{code} {body}"
    );
    let (code, body) = get(&format!("{base}/api/v1/pods"), "kubectl", Some("stolen")).await;
    assert_eq!(code, 403, "{body}");
    let (code, _) = get(&format!("{base}/api/v1/pods"), "kubectl", None).await;
    assert_eq!(code, 401);

    // Writes fail clearly.
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"new"}}"#;
    let (code, body) = call(
        "POST",
        &format!("{base}/api/v1/namespaces/prod/configmaps"),
        "kubectl",
        Some(TOKEN),
        Some(cm),
    )
    .await;
    assert_eq!(code, 503);
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap()
            .contains("not possible offline"),
        "{body}"
    );

    // Back online: fresh data from upstream.
    api.apply(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "new-1", "namespace": "prod"}}))
        .unwrap();
    relay.restore().await;
    wait_online(hub, true).await;
    let (code, body) = get(
        &format!("{base}/api/v1/namespaces/prod/pods"),
        "kubectl",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    assert!(names(&json(&body)).contains(&"new-1".to_string()));
}
