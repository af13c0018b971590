//! Issue acceptance (#18, item 12): connections that never finish their request headers
//! (slow-loris) must not lock other clients out of the hub. Before, 1,500 such connections
//! against a hub limited to 1,024 file descriptors made every normal request time out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::Process;
use hub_support::{PLAIN_HUB, plain_hub};

mod hub_support;

const SLOW_CLIENTS: usize = 1500;

fn connect_slowly(ns: &Netns, hub: SocketAddr) -> Vec<TcpStream> {
    ns.run(|| {
        let mut held = Vec::new();
        for _ in 0..SLOW_CLIENTS {
            // Beyond the hub's descriptors the kernel's backlog fills and connects time out.
            if let Ok(mut stream) = TcpStream::connect_timeout(&hub, Duration::from_millis(200)) {
                let _ = stream.write_all(b"GET /api/v1/pods HTTP/1.1\r\nHost: hub\r\n");
                held.push(stream);
            }
        }
        held
    })
}

fn normal_request(ns: &Netns, hub: SocketAddr) -> std::io::Result<String> {
    ns.run(|| {
        let mut stream = TcpStream::connect_timeout(&hub, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(
            b"GET /api/v1/namespaces/shop/services HTTP/1.1\r\nHost: hub\r\n\
              User-Agent: kubectl/v1.32\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n",
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
}

#[test]
fn hub_slow_clients_do_not_lock_others_out() {
    require_root();
    let ns = Netns::new("loris").unwrap();
    let listener = ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let api = ApiServer::from_listener(listener).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let hub = plain_hub(&ns, &api, cache.path(), &["prlimit", "--nofile=1024:1024"]);
    let addr: SocketAddr = PLAIN_HUB.parse().unwrap();
    assert!(
        normal_request(&ns, addr)
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );

    let held = connect_slowly(&ns, addr);
    eprintln!("{} slow connections open", held.len());
    for attempt in 0..3 {
        let started = Instant::now();
        let answer = normal_request(&ns, addr)
            .unwrap_or_else(|e| panic!("request {attempt} failed: {e}\n{}", tail(&hub)));
        let took = started.elapsed();
        eprintln!("normal request {attempt} answered in {took:?}");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    drop(held);
}

fn tail(process: &Process) -> String {
    let logs = process.logs();
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
