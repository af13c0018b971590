//! Issue #13 item "one metrics path": after real traffic through the real agent, `/metrics` is
//! OpenMetrics (content type and text, checked by the reference parser) and carries the
//! Snapshot's, the proxier's and the proxy's metrics under their documented names and types.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;
mod metrics_support;

use std::time::Duration;

use datapath_support::{Backend, Cluster, HTTP, Svc, UDP};
use metrics_support::{OPENMETRICS, scrape};

const IP: &str = "10.96.0.10";

#[test]
fn agent_metrics_are_openmetrics_after_traffic() {
    let cluster = Cluster::new("metrics", 1);
    let web = Svc::new("web", IP)
        .ports(&[HTTP, UDP])
        .endpoints(&cluster.pod_ips());
    cluster.apply("web.yaml", &web.yaml());
    // Through the proxy (no kernel fast path), so the proxy's counters move.
    let mut agent = cluster.start_agent(Backend::Nftables, "    kernelFastPath: false\n");
    assert_eq!(
        cluster.curl(&format!("http://{IP}/"), &[]).as_deref(),
        Ok("pod-a")
    );
    assert_eq!(
        cluster.udp_echo(IP, 7001, "datagram").as_deref(),
        Ok("datagram from 10.96.0.10:7001")
    );
    let admin = agent.process.admin_addr(Duration::from_secs(5)).unwrap();
    let scraped = scrape(agent.node().netns(), admin);
    assert_eq!(scraped.content_type, OPENMETRICS);

    let counter = |name: &str| scraped.value(name, "counter", &[]);
    let gauge = |name: &str| scraped.value(name, "gauge", &[]);
    assert!(gauge("edgemesh_snapshot_version") >= 1.0);
    assert_eq!(gauge("edgemesh_services"), 1.0);
    assert_eq!(gauge("edgemesh_proxied_frontends"), 2.0);
    assert!(counter("edgemesh_proxier_syncs") >= 1.0);
    assert!(counter("edgemesh_proxier_incremental_syncs") < counter("edgemesh_proxier_syncs"));
    assert_eq!(counter("edgemesh_proxier_sync_errors"), 0.0);
    assert_eq!(counter("edgemesh_proxier_order_repairs"), 0.0);
    assert!(gauge("edgemesh_proxier_last_sync_microseconds") > 0.0);
    assert_eq!(gauge("edgemesh_proxier_frontends"), 2.0);
    assert_eq!(gauge("edgemesh_proxier_fast_path_frontends"), 0.0);
    assert!(counter("edgemesh_proxy_tcp_accepted") >= 1.0);
    assert!(counter("edgemesh_proxy_tcp_routed") >= 1.0);
    assert!(counter("edgemesh_proxy_bytes_to_upstream") > 0.0);
    assert!(counter("edgemesh_proxy_bytes_to_client") > 0.0);
    assert!(counter("edgemesh_proxy_udp_sessions") >= 1.0);
    for reason in ["queue_full", "no_session", "send_failed", "reply_failed"] {
        let labels = [("reason", reason)];
        let dropped = scraped.value("edgemesh_proxy_udp_datagrams_dropped", "counter", &labels);
        assert_eq!(dropped, 0.0, "{reason}");
    }
    for name in [
        "edgemesh_proxy_tcp_no_route",
        "edgemesh_proxy_tcp_no_endpoint",
        "edgemesh_proxy_dial_failures",
        "edgemesh_proxy_dial_retries",
        "edgemesh_proxy_idle_closed",
        "edgemesh_proxy_udp_sessions_evicted",
    ] {
        counter(name);
    }
    gauge("edgemesh_proxy_active_connections");
    // The same traffic per service: one TCP connection and one UDP flow to web.
    let web = [("namespace", "shop"), ("service", "web")];
    let service_counter = |name: &str, extra: &[(&'static str, &'static str)]| {
        let labels: Vec<_> = web.iter().chain(extra).copied().collect();
        scraped.value(name, "counter", &labels)
    };
    assert!(service_counter("edgemesh_proxy_service_connections", &[]) >= 2.0);
    assert_eq!(service_counter("edgemesh_proxy_service_errors", &[]), 0.0);
    for direction in ["to_upstream", "to_client"] {
        let bytes = service_counter("edgemesh_proxy_service_bytes", &[("direction", direction)]);
        assert!(bytes > 0.0, "{direction}: {bytes}");
    }
    // Durations are histograms in seconds; the process reports itself as client libraries do.
    assert!(scraped.histogram_count("edgemesh_proxier_sync_duration_seconds", &[]) >= 1.0);
    assert!(scraped.histogram_count("edgemesh_proxy_dial_duration_seconds", &[]) >= 1.0);
    let version = env!("CARGO_PKG_VERSION");
    let build = [("version", version), ("role", "agent")];
    assert_eq!(scraped.value("edgemesh_build_info", "gauge", &build), 1.0);
    // Present; a young agent may not have used one 10 ms tick of CPU yet.
    assert!(counter("process_cpu_seconds") >= 0.0);
    assert!(gauge("process_resident_memory_bytes") > 1e6);
    assert!(gauge("process_open_fds") >= 3.0);
    assert!(gauge("process_max_fds") >= gauge("process_open_fds"));
    assert!(gauge("process_start_time_seconds") > 1.6e9);
    assert!(gauge("process_threads") >= 1.0);
    // Every family served is documented, under the sample name a query uses.
    let docs = include_str!("../../../docs/metrics.md");
    for (family, found) in &scraped.families {
        let sample = match found["type"].as_str() {
            Some("counter") => format!("{family}_total"),
            _ => family.clone(),
        };
        assert!(
            docs.contains(&format!("`{sample}`")),
            "{sample} not in docs/metrics.md"
        );
    }
    assert!(gauge("edgemesh_proxy_udp_sessions_active") >= 1.0);
}
