//! Issue acceptance: a real `edgemesh agent --manifests DIR` follows the directory live.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod common;

use std::time::Duration;

use common::{Agent, backends, has_service, netns};

const WITHIN: Duration = Duration::from_secs(1);

fn service_yaml(name: &str, ip: &str, backend: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\n\
         spec:\n  clusterIP: {ip}\n  ports: [{{name: http, port: 80}}]\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}-x, namespace: shop, labels: {{kubernetes.io/service-name: {name}}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: 8080}}]\n\
         endpoints: [{{addresses: [\"{backend}\"]}}]\n"
    )
}

#[test]
fn agent_follows_files_added_changed_removed_and_reports_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    std::fs::write(
        dir.path().join("web.yaml"),
        service_yaml("web", "10.96.0.10", "192.0.2.1"),
    )
    .unwrap();
    let agent = Agent::start(netns("man"), &["--manifests", &path]).ready();
    assert_eq!(backends(&agent.snapshot(), "shop/web"), ["192.0.2.1:8080"]);

    std::fs::write(
        dir.path().join("cart.yaml"),
        service_yaml("cart", "10.96.0.11", "192.0.2.2"),
    )
    .unwrap();
    let took = agent.wait_snapshot(WITHIN, "file added", |s| has_service(s, "shop/cart"));
    eprintln!("new file visible after {took:?}");

    std::fs::write(
        dir.path().join("web.yaml"),
        service_yaml("web", "10.96.0.10", "192.0.2.9"),
    )
    .unwrap();
    agent.wait_snapshot(WITHIN, "file changed", |s| {
        backends(s, "shop/web") == ["192.0.2.9:8080"]
    });

    std::fs::remove_file(dir.path().join("cart.yaml")).unwrap();
    agent.wait_snapshot(WITHIN, "file removed", |s| !has_service(s, "shop/cart"));

    // A syntax error is reported with its path and line; the other files still load.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: [x\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pay.yaml"),
        service_yaml("pay", "10.96.0.12", "192.0.2.3"),
    )
    .unwrap();
    agent.wait_snapshot(WITHIN, "good file next to a broken one", |s| {
        has_service(s, "shop/pay")
    });
    let line = agent
        .logs()
        .lines()
        .find(|l| l.contains("broken.yaml"))
        .map(String::from)
        .unwrap_or_else(|| panic!("broken file not reported:\n{}", agent.logs()));
    assert!(
        line.contains(&format!("{path}/broken.yaml")) && line.contains("line"),
        "{line}"
    );
    assert!(has_service(&agent.snapshot(), "shop/web"));
}

#[test]
fn agent_applies_both_service_filter_modes() {
    let dir = tempfile::tempdir().unwrap();
    let labelled = service_yaml("labelled", "10.96.0.21", "192.0.2.2").replace(
        "metadata: {name: labelled, namespace: shop}",
        "metadata: {name: labelled, namespace: shop, labels: {service.edgemesh.kubeedge.io/service-proxy-name: \"\"}}",
    );
    std::fs::write(
        dir.path().join("a.yaml"),
        service_yaml("plain", "10.96.0.20", "192.0.2.1"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b.yaml"), labelled).unwrap();
    let manifests = dir.path().to_str().unwrap();
    let cases = [
        (
            "FilterIfLabelExists",
            "proxied",
            r#"{"skipped":"filteredByLabel"}"#,
            "10.96.0.20",
        ),
        (
            "FilterIfLabelDoesNotExists",
            r#"{"skipped":"filteredByLabel"}"#,
            "proxied",
            "10.96.0.21",
        ),
    ];
    for (mode, plain, labelled, intercepted) in cases {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            config.path(),
            format!(
                "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n\
                 modules:\n  edgeProxy:\n    enable: true\n    serviceFilterMode: {mode}\n"
            ),
        )
        .unwrap();
        let args = [
            "--config",
            config.path().to_str().unwrap(),
            "--manifests",
            manifests,
        ];
        let agent = Agent::start(netns("filter"), &args).ready();
        let snapshot = agent.snapshot();
        let proxy_of = |key: &str| snapshot["services"][key]["proxy"].to_string();
        assert_eq!(
            proxy_of("shop/plain").replace('"', ""),
            plain.replace('"', ""),
            "{mode}"
        );
        let labelled_proxy = proxy_of("shop/labelled").replace('"', "");
        assert_eq!(labelled_proxy, labelled.replace('"', ""), "{mode}");
        // Only the proxied service has an interception rule.
        let rules = agent
            .netns
            .exec_ok("nft", &["list", "set", "inet", "edgemesh", "svc4"])
            .unwrap();
        assert!(rules.contains(intercepted), "{mode}: {rules}");
        assert_eq!(rules.matches("10.96.0.2").count(), 1, "{mode}: {rules}");
    }
}

/// Issue #18, item 16: three `ln -s . loopN` in the directory made every rescan walk thousands
/// of directories on the async threads (DNS and the admin endpoint stopped answering); a file
/// rewritten in place (truncate, then write) dropped its service from the Snapshot for a moment.
#[test]
fn agent_survives_symlink_loops_and_in_place_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    let file = dir.path().join("web.yaml");
    let content = service_yaml("web", "10.96.0.10", "192.0.2.1");
    std::fs::write(&file, &content).unwrap();
    for i in 0..3 {
        std::os::unix::fs::symlink(".", dir.path().join(format!("loop{i}"))).unwrap();
    }
    let agent = Agent::start(netns("manloop"), &["--manifests", &path]).ready();
    assert!(agent.logs().contains("a symlink loop"), "{}", agent.logs());
    let mut missing = 0;
    let samples = 120;
    for round in 0..samples {
        // Rewritten in place, as `echo > file` or a plain editor save does.
        std::fs::write(&file, "").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        std::fs::write(&file, &content).unwrap();
        let started = std::time::Instant::now();
        let snapshot = agent.snapshot();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "round {round}: the admin endpoint took {:?}",
            started.elapsed()
        );
        missing += usize::from(!has_service(&snapshot, "shop/web"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        missing, 0,
        "shop/web missing in {missing} of {samples} samples"
    );
}
