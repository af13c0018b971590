use serde_json::json;

use super::*;

fn pods() -> ResourceKey {
    ResourceKey {
        group: String::new(),
        version: "v1".into(),
        resource: "pods".into(),
    }
}

fn pod_list(names: &[&str], rv: &str) -> Vec<u8> {
    let items: Vec<_> = names
        .iter()
        .map(|n| json!({"metadata": {"name": n, "namespace": "prod", "resourceVersion": rv}}))
        .collect();
    let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items});
    serde_json::to_vec(&list).unwrap()
}

fn all() -> ListScope {
    ListScope::default()
}

fn listed(cache: &Cache) -> Value {
    match cache.list("kubectl", &pods(), &all()).unwrap() {
        Lookup::Found(bytes) => serde_json::from_slice(&bytes).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lists_survive_a_restart_with_kind_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    cache
        .store_list("kubectl", &pods(), &all(), &pod_list(&["a", "b"], "5"))
        .unwrap();
    cache.record_credential("kubectl", &pods(), "abc");
    cache.flush();
    let file = dir.path().join("kubectl/pods.v1.core/prod/a");
    let on_disk: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(on_disk["kind"], "Pod");
    drop(cache);

    let cache = Cache::open(dir.path()).unwrap();
    let list = listed(&cache);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(cache.credential_known("kubectl", &pods(), "abc"));
    assert_eq!(
        cache.get("kubectl", &pods(), "prod", "zzz"),
        Lookup::NotFound
    );
    assert_eq!(cache.get("other", &pods(), "prod", "a"), Lookup::NotCached);
}

#[test]
fn a_relist_removes_vanished_objects_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    cache
        .store_list("kubectl", &pods(), &all(), &pod_list(&["a", "b"], "5"))
        .unwrap();
    cache
        .store_list("kubectl", &pods(), &all(), &pod_list(&["b"], "6"))
        .unwrap();
    cache.flush();
    assert!(!dir.path().join("kubectl/pods.v1.core/prod/a").exists());
    assert_eq!(listed(&cache)["metadata"]["resourceVersion"], "6");
}

#[test]
fn start_up_cleans_temp_files_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("kubectl/pods.v1.core/prod");
    std::fs::create_dir_all(&res).unwrap();
    std::fs::write(res.join(".tmp-a-1-1"), b"{\"metadata\":").unwrap();
    std::fs::write(res.join("torn"), b"{\"metadata\":").unwrap();
    std::fs::write(
        res.join("ok"),
        br#"{"metadata":{"name":"ok","namespace":"prod"}}"#,
    )
    .unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    assert!(!res.join(".tmp-a-1-1").exists());
    assert!(!res.join("torn").exists());
    assert!(matches!(
        cache.get("kubectl", &pods(), "prod", "ok"),
        Lookup::Found(_)
    ));
    // Objects without a list record are served by name, but never as a list.
    assert_eq!(
        cache.list("kubectl", &pods(), &all()).unwrap(),
        Lookup::NotCached
    );
}

#[test]
fn unsafe_names_are_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let evil = json!({"metadata": {"name": "..", "namespace": "prod"}});
    assert!(!cache.store_object("kubectl", &pods(), evil));
}

#[test]
fn discovery_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    cache.store_discovery(
        "kubectl",
        "/apis/apps/v1",
        Bytes::from_static(b"{\"kind\":\"APIResourceList\"}"),
    );
    cache.flush();
    drop(cache);
    let cache = Cache::open(dir.path()).unwrap();
    assert!(cache.discovery("other", "/apis/apps/v1").is_some());
    assert!(cache.discovery("other", "/api").is_none());
}

#[test]
fn list_items_keep_the_upstream_text_with_kind_and_api_version_put_in_front() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let body = br#"{"kind":"PodList","metadata":{"resourceVersion":"9"},"items":[
        {"metadata":{"name":"a","namespace":"prod","labels":{"app":"web"}},"spec":{"z":1,"a":2}},
        {"kind":"Pod","apiVersion":"v1","metadata":{"name":"b","namespace":"prod"}}
    ]}"#;
    assert_eq!(
        cache.store_list("kubectl", &pods(), &all(), body).unwrap(),
        2
    );
    let Lookup::Found(a) = cache.get("kubectl", &pods(), "prod", "a") else {
        panic!("a not cached");
    };
    // Upstream key order kept ("z" before "a"), the missing fields added, valid JSON.
    assert_eq!(
        std::str::from_utf8(&a).unwrap(),
        r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"prod","labels":{"app":"web"}},"spec":{"z":1,"a":2}}"#
    );
    let Lookup::Found(b) = cache.get("kubectl", &pods(), "prod", "b") else {
        panic!("b not cached");
    };
    assert_eq!(
        std::str::from_utf8(&b).unwrap(),
        r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"b","namespace":"prod"}}"#
    );
    // Selectors still see the labels.
    let web = ListScope {
        label_selector: Some("app=web".into()),
        ..ListScope::default()
    };
    let Lookup::Found(list) = cache.list("kubectl", &pods(), &web).unwrap() else {
        panic!("no list");
    };
    let list: Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[test]
fn a_body_that_is_not_a_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    for body in [
        &b"{\"kind\":\"Pod\"}"[..],
        b"{\"kind\":\"PodList\"}",
        b"[1,2]",
        b"{\"kind\":\"PodList\",\"items\":[1,",
    ] {
        assert!(
            cache.store_list("kubectl", &pods(), &all(), body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// A list with one item the cache cannot store (no name, an unsafe name, not an object) is not
/// cached at all, and the cache keeps what it had: recorded complete without that item, it would
/// answer offline that the object does not exist.
#[test]
fn a_list_with_an_unstorable_item_is_refused_whole_and_the_cache_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let good = br#"{"kind":"PodList","metadata":{"resourceVersion":"9"},"items":[
        {"metadata":{"name":"a","namespace":"prod"}},
        {"metadata":{"name":"b","namespace":"prod"}}
    ]}"#;
    assert_eq!(
        cache.store_list("kubectl", &pods(), &all(), good).unwrap(),
        2
    );
    let bad_items = [
        r#"{"metadata":{"namespace":"prod"}}"#,
        r#"{"metadata":{"name":"../escape","namespace":"prod"}}"#,
        r#"{"metadata":{"name":"a/b","namespace":"prod"}}"#,
        r#"{"metadata":{"name":"","namespace":"prod"}}"#,
        r#"{"metadata":{"name":"x","namespace":"def/ault"}}"#,
        r#"42"#,
    ];
    for bad in bad_items {
        let body = format!(
            r#"{{"kind":"PodList","metadata":{{"resourceVersion":"10"}},"items":[{{"metadata":{{"name":"c","namespace":"prod"}}}},{bad}]}}"#
        );
        let err = cache
            .store_list("kubectl", &pods(), &all(), body.as_bytes())
            .unwrap_err();
        assert!(matches!(err, StoreError::UnstorableItem(1)), "{bad}: {err}");
        let Lookup::Found(list) = cache.list("kubectl", &pods(), &all()).unwrap() else {
            panic!("{bad}: the previous list was dropped");
        };
        let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
        let names: Vec<_> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a", "b"], "{bad}");
    }
}

/// Cached Secrets and ConfigMaps must not be readable by other local users.
#[test]
fn cache_files_are_0600_in_0700_directories() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = Cache::open(&root).unwrap();
    cache
        .store_list("kubectl", &pods(), &all(), &pod_list(&["a"], "5"))
        .unwrap();
    cache.flush();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for d in [
        "",
        "kubectl",
        "kubectl/pods.v1.core",
        "kubectl/pods.v1.core/prod",
    ] {
        assert_eq!(mode(&root.join(d)), 0o700, "{d}");
    }
    for f in [
        "kubectl/pods.v1.core/prod/a",
        "kubectl/pods.v1.core/.edgemesh-meta.json",
    ] {
        assert_eq!(mode(&root.join(f)), 0o600, "{f}");
    }
}
