//! Edge hub figures (issue #5): `list` latency for 1,000 and 10,000 pods direct to the upstream,
//! through the hub online (an uncached and a cached client) and offline from the cache; the
//! latency of a one-object get (the proxy's own overhead); time from hub start to the first
//! offline answer with 10,000 objects cached; disk bytes per cached object.
//!
//! Everything on loopback (no root needed). Run with `scripts/bench-hub.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver: failures should panic

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::hub::HubCommand;
use edgemesh_testkit::process::{Process, edgemesh_bin};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const CACHED: &str = "edge-app";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| pods | request | direct p50 / p99 | hub online, uncached client p50 / p99 | hub online, cached client p50 / p99 | hub offline (cache) p50 / p99 |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    let mut start_rows = Vec::new();
    for pods in [1_000usize, 10_000] {
        start_rows.push(rt.block_on(measure(pods)));
    }
    println!();
    println!(
        "| cached pods | hub start → first offline list answered | disk bytes per object (file sizes) | disk bytes per object (allocated) |"
    );
    println!("|---:|---:|---:|---:|");
    for row in start_rows {
        println!("{row}");
    }
}

fn pod(i: usize) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": format!("ns-{}", i % 20),
                     "labels": {"app": format!("app-{}", i % 50), "tier": "backend"}},
        "spec": {"nodeName": format!("node-{}", i % 100),
                 "containers": [{"name": "main", "image": "registry.example/app:1.2.3",
                                 "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
        "status": {"phase": "Running", "podIP": format!("10.244.{}.{}", i / 250, i % 250)}})
}

fn start_hub(upstream: &str, cache: &Path) -> (Process, SocketAddr) {
    HubCommand::new(upstream, cache)
        .flag("--cache-agents", CACHED)
        .flag("--log-level", "warn,edgemesh=info")
        .flag("--connect-timeout", "300ms")
        .start_plain(edgemesh_bin().unwrap(), None, Duration::from_secs(30))
        .unwrap()
}

async fn request(client: &HttpClient, addr: SocketAddr, path: &str, agent: &str) -> (u16, usize) {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("user-agent", agent)
        .header("authorization", "Bearer bench")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(req).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.len())
}

/// p50 / p99 over `n` sequential keep-alive requests (after 3 warm-up requests).
async fn latency(addr: SocketAddr, path: &str, agent: &str, n: usize) -> String {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..3 {
        let (status, _) = request(&client, addr, path, agent).await;
        assert_eq!(status, 200, "{path} as {agent}");
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let (status, _) = request(&client, addr, path, agent).await;
        samples.push(started.elapsed());
        assert_eq!(status, 200);
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    format!("{:.2} / {:.2} ms", ms(at(0.5)), ms(at(0.99)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn measure(pods: usize) -> String {
    let api = ApiServer::start().unwrap();
    for i in 0..pods {
        api.apply(pod(i)).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let n = if pods > 5_000 { 50 } else { 200 };
    let list = "/api/v1/pods";
    let get = "/api/v1/namespaces/ns-7/pods/pod-7";
    let (mut hub, hub_addr) = start_hub(&api.url(), cache.path());
    let mut rows = Vec::new();
    for (what, path, count) in [("list all", list, n), ("get one", get, 500)] {
        let direct = latency(api.addr(), path, "bench", count).await;
        let through = latency(hub_addr, path, "uncached-client", count).await;
        let cached = latency(hub_addr, path, CACHED, count).await;
        rows.push((what, path, count, direct, through, cached));
    }
    wait_cached(&mut hub, pods as u64);
    drop(hub);
    drop(api);
    // Offline: the same cache, the upstream gone (nothing listens on port 9).
    let (hub, hub_addr) = start_hub("http://127.0.0.1:9", cache.path());
    for (what, path, count, direct, through, cached) in rows {
        let offline = latency(hub_addr, path, CACHED, count).await;
        println!("| {pods} | {what} | {direct} | {through} | {cached} | {offline} |");
    }
    drop(hub);
    start_to_serve(pods, cache.path()).await
}

/// Waits until the hub has written every object (stores run off the response path).
fn wait_cached(hub: &mut Process, objects: u64) {
    hub.admin_addr(Duration::from_secs(5)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = hub.http_get("/debug/hub").unwrap();
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        let written = status["cache"]["files_written"].as_u64().unwrap_or(0);
        if status["cache"]["objects"].as_u64().unwrap_or(0) >= objects && written > objects {
            std::thread::sleep(Duration::from_millis(500));
            return;
        }
        assert!(Instant::now() < deadline, "cache never filled: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn start_to_serve(pods: usize, cache: &Path) -> String {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let (_hub, addr) = start_hub("http://127.0.0.1:9", cache);
    let deadline = started + Duration::from_secs(30);
    loop {
        let req = http::Request::get(format!("http://{addr}/api/v1/pods"))
            .header("user-agent", CACHED)
            .header("authorization", "Bearer bench")
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Ok(response) = client.request(req).await
            && response.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "never served offline");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let (bytes, blocks) = disk_usage(&cache.join(CACHED).join("pods.v1.core"));
    format!(
        "| {pods} | {:.0} ms | {} | {} |",
        ms(elapsed),
        bytes / pods as u64,
        blocks / pods as u64
    )
}

/// (sum of file sizes, allocated bytes) under `dir`.
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut totals = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                totals.0 += meta.len();
                totals.1 += meta.blocks() * 512;
            }
        }
    }
    totals
}
