//! The edge hub with real kubectl, across a real link cut (issue #5 acceptance): online through
//! the hub, offline from its cache (a held watch, a clear error on create, nothing for other
//! clients or other tokens), and fresh data again once the link is back.

mod hub_support;
mod metrics_support;

use std::time::{Duration, Instant};

use hub_support::*;

#[test]
fn real_hub_kubectl_online_offline_and_back() {
    let world = World::new("hubk");
    seed(&world.api);
    let cache = tempfile::tempdir().unwrap();
    let mut hub = world.start_hub(cache.path(), &["--cache-agents", "kubectl"]);
    let (code, ready) = hub.http_get("/readyz").unwrap();
    assert_eq!(code, 200, "{ready}");
    assert!(ready.contains("online"), "{ready}");
    // Offline with nothing cached the hub cannot answer anything: not ready.
    world.cut();
    wait_online(&hub, false);
    let (code, ready) = hub.http_get("/readyz").unwrap();
    assert_eq!(code, 503, "{ready}");
    assert!(ready.contains("nothing cached"), "{ready}");
    world.restore();
    wait_online(&hub, true);
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = world.kubeconfig(work.path(), TOKEN);
    let stranger = world.kubeconfig(work.path(), "another-token");

    // Online, through the HTTPS listener on the hub's link-local address.
    let online = world.kubectl(&kubeconfig, &["get", "pods,svc,configmaps", "-A"]);
    assert!(
        online.status.success(),
        "online: {}\n{}",
        stderr(&online),
        hub.logs()
    );
    for name in ["web-1", "web-2", "db-1", "settings"] {
        assert!(
            stdout(&online).contains(name),
            "{name} missing online:\n{}",
            stdout(&online)
        );
    }
    assert!(
        hub.logs().contains("kubectl list pods: /api/v1/pods"),
        "{}",
        hub.logs()
    );
    let device = world
        .edge
        .exec_ok("ip", &["-o", "addr", "show", "dev", "edgemesh-hub0"])
        .unwrap();
    assert!(device.contains("169.254.2.1/32"), "{device}");

    world.cut();
    wait_online(&hub, false);
    let (code, ready) = hub.http_get("/readyz").unwrap();
    // Ready offline, and says how old what it serves is (the lists kubectl made it cache above).
    assert!(
        code == 200
            && ready.contains("cached objects (last updated from upstream ")
            && ready.contains(" s ago)"),
        "{code} {ready}"
    );

    let offline = world.kubectl(&kubeconfig, &["get", "pods,svc,configmaps", "-A"]);
    assert!(
        offline.status.success(),
        "offline: {}\n{}",
        stderr(&offline),
        hub.logs()
    );
    // Same rows (the AGE column moves on).
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        rows(&stdout(&offline)),
        rows(&stdout(&online)),
        "offline answer differs from the online one"
    );
    let one = world.kubectl(
        &kubeconfig,
        &[
            "get",
            "pod",
            "web-1",
            "-n",
            "prod",
            "-o",
            "jsonpath={.spec.nodeName}",
        ],
    );
    assert_eq!(stdout(&one), "n1", "{}", stderr(&one));

    let create = world.kubectl(
        &kubeconfig,
        &[
            "create",
            "configmap",
            "new",
            "-n",
            "prod",
            "--from-literal=a=b",
        ],
    );
    assert!(!create.status.success());
    assert!(
        stderr(&create).contains("not possible offline"),
        "{}",
        stderr(&create)
    );

    let refused = world.kubectl(&stranger, &["get", "pods", "-A"]);
    assert!(
        !refused.status.success(),
        "another token was served offline: {}",
        stdout(&refused)
    );
    assert!(
        stderr(&refused).contains("Forbidden") || stderr(&refused).contains("forbidden"),
        "{}",
        stderr(&refused)
    );

    // Another client (curl's User-Agent) with the very token kubectl used: nothing from the cache.
    let ca = world.certs.path("ca.crt");
    let auth = format!("Authorization: Bearer {TOKEN}");
    let mut curl = world.edge.command("curl");
    curl.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "--cacert",
        &ca,
        "-H",
        &auth,
        "https://169.254.2.1:10268/api/v1/pods",
    ]);
    let other = run_bounded(curl, Duration::from_secs(20));
    let answer = stdout(&other);
    assert!(
        answer.ends_with("503") && answer.contains("not in cache_agents"),
        "{answer}"
    );
    let (_, metrics) = hub.http_get("/metrics").unwrap();
    assert!(metrics.contains("edgemesh_hub_cloud_online 0"), "{metrics}");
    // The same through the reference OpenMetrics parser, with the hub's content type.
    let admin = hub.admin_addr(Duration::from_secs(5)).unwrap();
    let scraped = metrics_support::scrape(world.edge.netns(), admin);
    assert_eq!(scraped.content_type, metrics_support::OPENMETRICS);
    assert_eq!(
        scraped.value("edgemesh_hub_cloud_online", "gauge", &[]),
        0.0
    );
    for served_by in ["upstream", "cache"] {
        let labels = [("served_by", served_by)];
        let timed = scraped.histogram_count("edgemesh_hub_request_duration_seconds", &labels);
        assert!(timed >= 1.0, "{served_by}: {timed}");
    }
    let expiry = "edgemesh_hub_serving_certificate_expiry_timestamp_seconds";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(scraped.value(expiry, "gauge", &[]) > now.as_secs_f64());
    let build = [("version", env!("CARGO_PKG_VERSION")), ("role", "hub")];
    assert_eq!(scraped.value("edgemesh_build_info", "gauge", &build), 1.0);

    // A watch started offline is held open, and closed when the link comes back.
    let watch_cache = tempfile::tempdir().unwrap();
    let mut watch = world.edge.command("kubectl");
    watch
        .env("KUBECONFIG", &kubeconfig)
        .arg("--cache-dir")
        .arg(watch_cache.path())
        .args(["get", "pods", "-n", "prod", "-w", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut watcher = watch.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        watcher.try_wait().unwrap().is_none(),
        "kubectl -w ended while offline"
    );

    world
        .api
        .apply(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "fresh", "namespace": "prod"}, "spec": {"containers": []}}))
        .unwrap();
    world.restore();
    wait_online(&hub, true);
    let deadline = Instant::now() + Duration::from_secs(15);
    while watcher.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = watcher.kill();
            panic!(
                "the offline watch was not closed when the cloud came back\n{}",
                hub.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let fresh = world.kubectl(&kubeconfig, &["get", "pods", "-n", "prod", "-o", "name"]);
    assert!(
        stdout(&fresh).contains("pod/fresh"),
        "{}\n{}",
        stdout(&fresh),
        stderr(&fresh)
    );
}
