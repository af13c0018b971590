//! Issue acceptance (#18, item 13): four clients relisting 300 changing pods through the hub
//! took its RSS from 11 to 302 MB (a disk-write queue without bound), and SIGTERM then took
//! 398 s to flush it. Now: RSS stays under 64 MiB and SIGTERM ends the hub within 5 s.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::netns::{Netns, require_root, run_in};
use hub_support::{PLAIN_HUB, plain_hub};

mod hub_support;

const PODS: usize = 300;
const CLIENTS: usize = 4;
const STORM: Duration = Duration::from_secs(10);

/// A pod of a realistic size (~4 KiB: managed fields, annotations) that changes every round.
fn pod(i: usize, round: usize) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": "storm",
                     "labels": {"app": "storm", "round": round.to_string()},
                     "annotations": {"note": "x".repeat(4000)}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": format!("app:{round}")}]}})
}

fn relist(ns_name: &str, hub: SocketAddr) -> usize {
    run_in(ns_name, || {
        let Ok(mut stream) = TcpStream::connect_timeout(&hub, Duration::from_secs(2)) else {
            return 0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = "GET /api/v1/namespaces/storm/pods HTTP/1.1\r\nHost: hub\r\n\
                       User-Agent: kubectl/v1.32\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return 0;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer.len()
    })
}

fn rss_kib(pid: u32) -> u64 {
    edgemesh_telemetry::status_bytes(pid, "VmRSS").unwrap_or(0) / 1024
}

#[test]
fn hub_relist_storm_keeps_memory_bounded_and_stops_fast() {
    require_root();
    let ns = Netns::new("storm").unwrap();
    let listener = ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let api = Arc::new(ApiServer::from_listener(listener).unwrap());
    for i in 0..PODS {
        api.apply(pod(i, 0)).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let mut hub = plain_hub(&ns, &api, cache.path(), &[]);
    let addr: SocketAddr = PLAIN_HUB.parse().unwrap();
    let baseline = rss_kib(hub.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let relists = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    {
        let (api, stop) = (Arc::clone(&api), Arc::clone(&stop));
        workers.push(std::thread::spawn(move || {
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..PODS {
                    api.apply(pod(i, round)).unwrap();
                }
                round += 1;
            }
        }));
    }
    for _ in 0..CLIENTS {
        let (ns_name, stop, relists) = (
            ns.name().to_owned(),
            Arc::clone(&stop),
            Arc::clone(&relists),
        );
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if relist(&ns_name, addr) > 0 {
                    relists.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    let mut peak = baseline;
    while started.elapsed() < STORM {
        peak = peak.max(rss_kib(hub.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let relisted = relists.load(Ordering::Relaxed);
    eprintln!(
        "{relisted} relists of {PODS} changing pods in {STORM:?}; RSS {baseline} KiB before, peak {peak} KiB"
    );
    assert!(
        relisted >= 20,
        "the storm did not happen: {relisted} relists"
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB\n{}", hub.logs());

    let stopping = Instant::now();
    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    let took = stopping.elapsed();
    eprintln!("SIGTERM to exit: {took:?} ({status:?})");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
}
