//! deploy/grafana/edgemesh-dashboard.json is valid JSON of a Grafana dashboard, and every metric
//! its queries read is one docs/metrics.md documents (agent_metrics.rs checks in turn that the
//! agent serves what the docs list), so a renamed metric cannot leave a panel silently empty.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

use std::collections::BTreeSet;
use std::path::Path;

fn repo_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Metric names in a PromQL expression, with the series suffixes a histogram or counter adds
/// taken off (the docs name `_total` counters whole, histograms by their family).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("edgemesh_") || word.starts_with("process_"))
        .map(|word| word.trim_end_matches("_bucket").to_string())
        .collect()
}

#[test]
fn dashboard_reads_only_documented_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/edgemesh-dashboard.json")).unwrap();
    let docs = repo_file("docs/metrics.md");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut read = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "panel {title}: no metric in {expr}");
            read.extend(names);
        }
    }
    let undocumented: Vec<_> = read
        .iter()
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/metrics.md: {undocumented:?}"
    );
    // The hot families are on the board.
    for name in [
        "edgemesh_proxy_dial_duration_seconds",
        "edgemesh_dns_request_duration_seconds",
        "edgemesh_hub_serving_certificate_expiry_timestamp_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(read.contains(name), "{name} not on the dashboard");
    }
}
