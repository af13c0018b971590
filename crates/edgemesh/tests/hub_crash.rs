//! SIGKILL in the middle of a burst of cache writes, many times: every file left is a complete
//! object, and the next start (offline) serves what is on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

mod hub_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::hub::HubCommand;
use edgemesh_testkit::process::Process;
use hub_support::BIN;

const OBJECTS: usize = 1500;
const ROUNDS: u64 = 8;

fn start_hub(upstream: &str, cache: &Path) -> (Process, SocketAddr) {
    let (mut hub, addr) = HubCommand::new(upstream, cache)
        .flag("--cache-agents", "edge-app")
        .flag("--connect-timeout", "300ms")
        .flag("--heartbeat-interval", "200ms")
        .start_plain(BIN, None, Duration::from_secs(20))
        .unwrap();
    hub.admin_addr(Duration::from_secs(5)).unwrap();
    (hub, addr)
}

/// GET as `edge-app`; returns (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: hub\r\nUser-Agent: edge-app/1.0\r\n\
        Authorization: Bearer t\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    edgemesh_testkit::http::parse_response(&raw).unwrap()
}

/// Waits (bounded) until this hub process has written `n` cache files.
fn wait_files_written(hub: &Process, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = hub.http_get("/debug/hub").unwrap();
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status["cache"]["files_written"].as_u64().unwrap_or(0) >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {body} after 20 s"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn change_everything(api: &ApiServer, round: u64) {
    for i in 0..OBJECTS {
        api.apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": "burst"},
            "data": {"round": round.to_string(), "padding": "x".repeat(200)}}))
            .unwrap();
    }
}

/// Every object file parses and names itself; returns how many there are and the distinct
/// `round`s they hold (more than one = the kill interrupted a burst).
fn check_files(dir: &Path) -> (usize, std::collections::BTreeSet<String>) {
    let mut rounds = std::collections::BTreeSet::new();
    let objects = dir.join("edge-app/configmaps.v1.core/burst");
    let Ok(entries) = std::fs::read_dir(&objects) else {
        return (0, rounds);
    };
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // temporary files of interrupted writes: hidden, removed at start-up
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{} is not a complete object ({e}): {text:?}",
                path.display()
            )
        });
        assert_eq!(
            value["metadata"]["name"],
            name.as_str(),
            "{}",
            path.display()
        );
        assert_eq!(value["kind"], "ConfigMap");
        rounds.insert(value["data"]["round"].as_str().unwrap_or("").to_string());
        count += 1;
    }
    (count, rounds)
}

#[test]
fn hub_sigkill_during_cache_writes_leaves_only_complete_objects() {
    let api = ApiServer::start().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let upstream = api.url();
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        change_everything(&api, round);
        let (mut hub, addr) = start_hub(&upstream, cache.path());
        let (code, body) = get(addr, "/api/v1/namespaces/burst/configmaps");
        assert_eq!(code, 200, "{body}");
        // The answer is back before the disk writes are done: kill somewhere in the burst,
        // a bit later each round.
        wait_files_written(&hub, 20 + round * (OBJECTS as u64 / ROUNDS));
        hub.kill().unwrap();
        let (count, rounds) = check_files(cache.path());
        if count < OBJECTS || rounds.len() > 1 {
            interrupted += 1;
        }
    }
    assert!(
        interrupted > 0,
        "no kill landed inside a burst of writes; the test proves nothing"
    );
    // Offline restart (nothing listens on port 9): serves what the disk holds.
    eprintln!("{interrupted} of {ROUNDS} kills interrupted a burst");
    let (hub, addr) = start_hub("http://127.0.0.1:9", cache.path());
    let (on_disk, _) = check_files(cache.path());
    assert!(on_disk > 0, "nothing was written in {ROUNDS} rounds");
    let (code, body) = get(addr, "/api/v1/namespaces/burst/configmaps/cm-0");
    assert_eq!(code, 200, "{body}\n{}", hub.logs());
    let (code, body) = get(addr, "/api/v1/namespaces/burst/configmaps");
    match code {
        // The list record is only there when the last list write finished: then it is whole.
        200 => {
            let list: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                list["items"].as_array().unwrap().len(),
                OBJECTS,
                "a partial list was served"
            );
        }
        503 => assert!(body.contains("never cached"), "{body}"),
        other => panic!("unexpected {other}: {body}"),
    }
}
