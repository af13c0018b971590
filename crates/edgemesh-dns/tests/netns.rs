//! The real kernel: the bridge device created through netlink inside a fresh network namespace,
//! the server bound to its address, and the real `dig` asking it. Needs root; fails otherwise.

// Test helpers below panic on failure on purpose: that is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use edgemesh_dns::{DEFAULT_BRIDGE_IP, DnsConfig, DnsMetrics, DnsServer};
use edgemesh_host::ensure_bridge_device;
use edgemesh_model::SnapshotCell;
use nix::sched::{CloneFlags, setns};
use support::*;
use tokio::sync::oneshot;

/// A network namespace named after this process, deleted on drop (also on panic).
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Self {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "this test needs root (it creates a network namespace); run it as root"
        );
        let name = format!("emdns-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn dig(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name, "dig", "+time=1", "+tries=1"];
        all.extend_from_slice(args);
        Command::new("ip").args(&all).output().unwrap()
    }

    /// `dig +short` lines; fails the test if dig could not reach the server.
    fn short(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["+short"];
        all.extend_from_slice(args);
        let out = self.dig(&all);
        assert!(out.status.success(), "dig {args:?}: {out:?}");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    fn status(&self, args: &[&str]) -> String {
        let out = self.dig(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = text
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next());
        status.unwrap_or("NO ANSWER").to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// Commands from the test thread into the namespace's runtime.
struct Control {
    stop_upstream: oneshot::Sender<()>,
    upstream_stopped: mpsc::Receiver<()>,
    shutdown: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

fn start_in(ns: &Netns, snapshots: Arc<SnapshotCell>) -> Control {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stopped_tx, upstream_stopped) = mpsc::channel();
    let (stop_upstream, stop_rx) = oneshot::channel::<()>();
    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    ns.enter_thread(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let first = ensure_bridge_device("edgemesh0", DEFAULT_BRIDGE_IP, 32)
                .await
                .unwrap();
            let again = ensure_bridge_device("edgemesh0", DEFAULT_BRIDGE_IP, 32)
                .await
                .unwrap();
            assert!(first.created && first.address_added, "{first:?}");
            assert!(
                !again.created && !again.address_added && again.index == first.index,
                "{again:?}"
            );
            // Another address of the node that must NOT answer DNS.
            ensure_bridge_device("other0", "192.0.2.1".parse().unwrap(), 24)
                .await
                .unwrap();
            let upstream = FakeUpstream::start(
                zone(&[("example.org.", &["192.0.2.7"])], 300),
                Behaviour::Answer,
            )
            .await;
            let metrics = Arc::new(DnsMetrics::default());
            let config = DnsConfig {
                upstreams: vec![upstream.addr],
                cache_ttl: Duration::ZERO,
                ..DnsConfig::default()
            };
            let main = DnsServer::bind(&config, snapshots.clone(), metrics.clone())
                .await
                .unwrap();
            let custom = DnsConfig {
                listen: vec![SocketAddr::new(DEFAULT_BRIDGE_IP, 5353)],
                cluster_domain: "edge.example".into(),
                ..config
            };
            let custom = DnsServer::bind(&custom, snapshots, metrics).await.unwrap();
            let (done_tx, done_rx) = tokio::sync::watch::channel(false);
            for server in [main, custom] {
                let mut done = done_rx.clone();
                tokio::spawn(server.run(async move {
                    let _ = done.wait_for(|d| *d).await;
                }));
            }
            ready_tx.send(()).unwrap();
            let _ = stop_rx.await;
            upstream.stop().await;
            stopped_tx.send(()).unwrap();
            let _ = shutdown_rx.await;
            let _ = done_tx.send(true);
        });
    })
    .map(|thread| {
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("DNS server did not start in the namespace");
        Control {
            stop_upstream,
            upstream_stopped,
            shutdown,
            thread,
        }
    })
    .unwrap()
}

impl Netns {
    /// Runs `f` on a new thread that lives in this namespace.
    fn enter_thread(
        &self,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::Builder::new()
            .name("in-netns".into())
            .spawn(move || {
                let file = File::open(path).unwrap();
                setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
                f();
            })
    }
}

#[test]
fn dig_against_the_bridge_address_in_a_namespace() {
    let ns = Netns::new("dig");
    let snapshots = Arc::new(SnapshotCell::new(snapshot(3, 1)));
    let control = start_in(&ns, snapshots.clone());
    let at = "@169.254.96.16";

    assert_eq!(ns.short(&[at, "web.ns.svc.cluster.local"]), ["10.96.0.10"]);
    assert_eq!(
        ns.short(&[at, "+tcp", "web.ns.svc.cluster.local"]),
        ["10.96.0.10"]
    );
    assert_eq!(
        ns.short(&[at, "many.ns.svc.cluster.local"]),
        ["10.244.0.1", "10.244.0.2", "10.244.0.3"]
    );
    assert_eq!(
        ns.short(&[at, "SRV", "_http._tcp.web.ns.svc.cluster.local"]),
        ["0 100 80 web.ns.svc.cluster.local."]
    );
    assert_eq!(
        ns.short(&[at, "-x", "10.96.0.10"]),
        ["web.ns.svc.cluster.local."]
    );
    assert_eq!(
        ns.short(&[at, "-p", "5353", "web.ns.svc.edge.example"]),
        ["10.96.0.10"]
    );
    assert_eq!(ns.status(&[at, "nope.ns.svc.cluster.local"]), "NXDOMAIN");

    // A deleted service is NXDOMAIN on the very next query.
    let deleted_at = Instant::now();
    snapshots.store(Arc::new(empty_snapshot(2)));
    assert_eq!(ns.status(&[at, "web.ns.svc.cluster.local"]), "NXDOMAIN");
    assert!(deleted_at.elapsed() < Duration::from_secs(1));

    // External names through the upstream; then from the stale cache once it is gone.
    assert_eq!(ns.short(&[at, "example.org"]), ["192.0.2.7"]);
    control.stop_upstream.send(()).unwrap();
    control
        .upstream_stopped
        .recv_timeout(Duration::from_secs(5))
        .unwrap();
    assert_eq!(ns.short(&[at, "example.org"]), ["192.0.2.7"]);
    assert_eq!(ns.status(&[at, "never.example.org"]), "SERVFAIL");

    // Nothing listens on the namespace's other addresses.
    for other in ["@192.0.2.1", "@127.0.0.1"] {
        let out = ns.dig(&[other, "web.ns.svc.cluster.local"]);
        assert!(!out.status.success(), "{other} answered: {out:?}");
    }

    control.shutdown.send(()).unwrap();
    control.thread.join().unwrap();
}
