//! Scale figures (issue #16 item 3): a release `edgemesh agent` with the nftables backend, in a
//! network namespace of its own, loaded with N Services of 3 endpoints each, either from the
//! apiserver test double (paged lists, as kube-apiserver) or from one manifests file. For each N
//! it prints: time to ready, time until the rules hold every frontend, the last full nftables
//! apply (`edgemesh_proxier_last_sync_microseconds`), VmRSS / VmHWM / RssAnon once settled, and
//! (API mode) one endpoint change: from the write in the double to the new backend in the
//! kernel's map (as the kernel announces it to nf_tables listeners), the apply that carried it
//! (incremental or a full rewrite) and the agent's CPU for it. `LOG_DIR=dir` keeps the agent's
//! log.
//!
//! usage: scale_bench api|manifests N [N...]   (run by `scripts/bench-scale.sh`, root)
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver: failures should panic

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::{Process, edgemesh_bin};
use serde_json::json;

/// Endpoints per service (all without a node name, so the kernel fast path DNATs them).
const ENDPOINTS: u32 = 3;
/// The address one endpoint change moves to.
const CHANGED_IP: &str = "192.0.2.250";

fn main() {
    require_root();
    let mut args = std::env::args().skip(1);
    let mode = args
        .next()
        .expect("usage: scale_bench api|manifests N [N...]");
    let sizes: Vec<u32> = args.map(|a| a.parse().expect("N is a count")).collect();
    assert!(
        mode == "api" || mode == "manifests",
        "mode is api or manifests"
    );
    println!(
        "| mode | services | endpoints | ready after | rules complete after | full apply | VmRSS | VmHWM | RssAnon | one endpoint change synced (seen in the kernel) | its Snapshot rebuild | its apply | agent CPU for it |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        measure(&mode, n);
    }
}

fn measure(mode: &str, services: u32) {
    let ns = Netns::new("scale").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n\
         modules:\n  edgeDNS: {enable: false}\n  edgeProxy: {enable: true, backend: nftables}\n",
    )
    .unwrap();
    let mut args: Vec<String> = [
        "agent",
        "--config",
        config.to_str().unwrap(),
        "--admin-addr",
        "127.0.0.1:0",
        "--node-name",
        "scale",
        "--log-level",
        // The publisher's and the proxier's debug lines carry the rebuild and sync times; the
        // admin address is found in `edgemesh::mesh`'s line (without it the driver waits 600 s).
        "warn,edgemesh::agent=info,edgemesh::mesh=info,edgemesh_kube::publisher=debug,edgemesh_netfilter::proxier=debug,edgemesh_netfilter::nft=debug",
    ]
    .map(String::from)
    .to_vec();
    let loaded = Instant::now();
    let api = if mode == "api" {
        let listener = ns.run(|| TcpListener::bind("127.0.0.1:0")).unwrap();
        let api = ApiServer::from_listener(listener).unwrap();
        for i in 0..services {
            api.apply(service(i)).unwrap();
            api.apply(slice(i, false)).unwrap();
        }
        args.extend(["--master".into(), api.url()]);
        Some(api)
    } else {
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let docs: Vec<String> = (0..services)
            .flat_map(|i| [service(i).to_string(), slice(i, false).to_string()])
            .collect();
        std::fs::write(manifests.join("bulk.yaml"), docs.join("\n---\n")).unwrap();
        args.extend(["--manifests".into(), manifests.to_str().unwrap().into()]);
        None
    };
    eprintln!(
        "{mode} {services}: loaded in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let mut agent = Process::start(edgemesh_bin().unwrap(), &args, Some(&ns)).unwrap();
    agent
        .wait_ready(Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.logs()));
    let ready = started.elapsed();
    wait_metric(
        &agent,
        "edgemesh_proxier_fast_path_frontends",
        u64::from(services),
    );
    let rules = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let full_apply = metric(&agent, "edgemesh_proxier_last_sync_microseconds");
    let memory = Memory::of(agent.pid());
    save_smaps(agent.pid(), mode, services);
    save_log(&agent, mode, services);
    // Subscribed only now: a listener makes the kernel write a notification per element, which
    // would slow the full apply measured above 2-4 times (an agent has no listener).
    let change = api.map(|api| {
        let watch = ElementWatch::start(&ns);
        change_endpoint(&agent, &api, &watch, services / 2)
    });
    let change = change.map_or("– | – | – | –".into(), |c| {
        format!(
            "{:.0} ms ({}) | {:.0} ms | {:.0} ms ({}) | {:.0} ms",
            c.synced.as_secs_f64() * 1e3,
            c.seen.map_or("not seen in 30 s".into(), |d| format!(
                "kernel {:.0} ms",
                d.as_secs_f64() * 1e3
            )),
            c.rebuild_ms,
            c.apply_micros as f64 / 1e3,
            if c.incremental { "incremental" } else { "full" },
            c.cpu.as_secs_f64() * 1e3
        )
    });
    println!(
        "| {mode} | {services} | {} | {:.1} s | {:.1} s | {:.0} ms | {:.1} MiB | {:.1} MiB | {:.1} MiB | {change} |",
        services * ENDPOINTS,
        ready.as_secs_f64(),
        rules.as_secs_f64(),
        full_apply as f64 / 1e3,
        memory.rss,
        memory.hwm,
        memory.anon,
    );
    agent.terminate(Duration::from_secs(60)).unwrap();
}

struct Change {
    /// From the write to the proxier's sync counter moving (its `nft -f` returned).
    synced: Duration,
    /// From the write to the kernel announcing the new map element, if it did within 30 s.
    seen: Option<Duration>,
    apply_micros: u64,
    /// The Snapshot rebuild that carried the change (the publisher's `build_ms`).
    rebuild_ms: f64,
    /// Whether the agent sent only the changed elements (its incremental-sync counter moved).
    incremental: bool,
    cpu: Duration,
}

/// Moves one endpoint of service `i` to [`CHANGED_IP`] and waits until the kernel's map has it:
/// the kernel announces each committed element ([`ElementWatch`]), so the time it announces the
/// new backend is when the kernel had it (asking with `nft get element` reads the whole map: 11 s
/// at 100,000).
fn change_endpoint(agent: &Process, api: &ApiServer, watch: &ElementWatch, i: u32) -> Change {
    let incremental_before = metric(agent, "edgemesh_proxier_incremental_syncs_total");
    let syncs_before = metric(agent, "edgemesh_proxier_syncs_total");
    let cpu_before = cpu(agent.pid());
    let written = Instant::now();
    api.apply(slice(i, true)).unwrap();
    // The counter moves once `nft -f` returned, i.e. the kernel committed the change.
    let deadline = written + Duration::from_secs(300);
    while metric(agent, "edgemesh_proxier_syncs_total") == syncs_before {
        assert!(Instant::now() < deadline, "the change was never synced");
        std::thread::sleep(Duration::from_millis(2));
    }
    let synced = written.elapsed();
    // Only service `i` ever has this backend (in whichever slot its order puts it).
    let seen = watch.saw(Duration::from_secs(30));
    let cpu = cpu(agent.pid()) - cpu_before;
    Change {
        synced,
        seen: seen.map(|at| at.duration_since(written)),
        apply_micros: metric(agent, "edgemesh_proxier_last_sync_microseconds"),
        rebuild_ms: last_field(&agent.logs(), "snapshot published", "build_ms"),
        incremental: metric(agent, "edgemesh_proxier_incremental_syncs_total") > incremental_before,
        cpu,
    }
}

/// A netlink socket in the namespace subscribed to nf_tables events (what `nft monitor` reads,
/// without `nft monitor`'s listing of the whole ruleset first, which fails at 100,000 services):
/// a thread notes when an added set element carries [`CHANGED_IP`].
struct ElementWatch {
    seen: std::sync::mpsc::Receiver<Instant>,
    /// Ends the reading thread, which closes the socket (it would keep the namespace alive).
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ElementWatch {
    fn start(ns: &Netns) -> ElementWatch {
        use netlink_sys::{Socket, constants::NETLINK_NETFILTER};
        const NFNLGRP_NFTABLES: u32 = 7;
        let socket = ns.run(|| {
            let mut socket = Socket::new(NETLINK_NETFILTER).unwrap();
            socket.bind_auto().unwrap();
            socket.add_membership(NFNLGRP_NFTABLES).unwrap();
            socket.set_non_blocking(true).unwrap();
            socket
        });
        let wanted: std::net::Ipv4Addr = CHANGED_IP.parse().unwrap();
        let (tx, seen) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(1 << 20);
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                buf.clear();
                match socket.recv(&mut buf, 0) {
                    Ok(_) if new_element_with(&buf, wanted.octets()) => {
                        let _ = tx.send(Instant::now());
                    }
                    Ok(_) => {}
                    // Nothing yet; ENOBUFS (events dropped while we were slow) is no end either.
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        ElementWatch { seen, stop }
    }

    /// When an element with the address came, waiting at most `within` from now.
    fn saw(&self, within: Duration) -> Option<Instant> {
        self.seen.recv_timeout(within).ok()
    }
}

impl Drop for ElementWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether a datagram of nf_tables events holds an `NFT_MSG_NEWSETELEM` with `address` in it.
fn new_element_with(mut events: &[u8], address: [u8; 4]) -> bool {
    const NEWSETELEM: u16 = (10 << 8) | 12;
    while events.len() >= 16 {
        let len = u32::from_ne_bytes(events[..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes([events[4], events[5]]);
        if len < 16 || len > events.len() {
            return false;
        }
        if kind == NEWSETELEM && events[16..len].windows(4).any(|w| w == address) {
            return true;
        }
        events = &events[len.next_multiple_of(4).min(events.len())..];
    }
    false
}

/// The value of `field=` on the last log line containing `message` (0 when none).
fn last_field(logs: &str, message: &str, field: &str) -> f64 {
    let key = format!("{field}=");
    logs.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(key.as_str()))
        })
        .filter_map(|v| v.parse().ok())
        .next_back()
        .unwrap_or(0.0)
}

fn wait_metric(agent: &Process, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while metric(agent, name) != want {
        assert!(Instant::now() < deadline, "{name} never reached {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(agent: &Process, name: &str) -> u64 {
    let (_, metrics) = agent.http_get("/metrics").unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU of `pid` and of the children it waited for (`nft` runs as one).
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks: u64 = fields[11..15].iter().sum(); // utime stime cutime cstime
    Duration::from_millis(ticks * 10) // USER_HZ = 100
}

/// With `SMAPS_DIR` set, keeps the agent's /proc/PID/smaps of each run there, to see which
/// mappings (heap, binary text, stacks) the RSS is made of.
fn save_smaps(pid: u32, mode: &str, services: u32) {
    let Some(dir) = std::env::var_os("SMAPS_DIR") else {
        return;
    };
    let smaps = std::fs::read(format!("/proc/{pid}/smaps")).unwrap();
    let path = std::path::Path::new(&dir).join(format!("smaps-{mode}-{services}"));
    std::fs::write(&path, smaps).unwrap();
    eprintln!("smaps: {}", path.display());
}

/// With `LOG_DIR=dir`, the agent's log as it is once the rules are complete.
fn save_log(agent: &Process, mode: &str, services: u32) {
    let Some(dir) = std::env::var_os("LOG_DIR") else {
        return;
    };
    let path = std::path::Path::new(&dir).join(format!("agent-{mode}-{services}.log"));
    std::fs::write(&path, agent.logs()).unwrap();
    eprintln!("log: {}", path.display());
}

/// A memory field of `pid`'s `/proc/PID/status`, in MiB (0 when the process is gone).
fn status_mib(pid: u32, field: &str) -> f64 {
    edgemesh_telemetry::status_bytes(pid, field).unwrap_or(0) as f64 / f64::from(1 << 20)
}

/// VmRSS, VmHWM and RssAnon in MiB.
struct Memory {
    rss: f64,
    hwm: f64,
    anon: f64,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        let mib = |field| status_mib(pid, field);
        Memory {
            rss: mib("VmRSS"),
            hwm: mib("VmHWM"),
            anon: mib("RssAnon"),
        }
    }
}

/// 10.96.0.0/12, from 10.96.0.1 on.
fn cluster_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 1)) + i)
}

/// Endpoint addresses from 10.100.0.0 on (inside 10.96.0.0/12; never dialled).
fn endpoint_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 100, 0, 0)) + n)
}

fn service(i: u32) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": format!("svc-{i}"), "namespace": "scale"},
           "spec": {"clusterIP": cluster_ip(i).to_string(),
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
}

/// The EndpointSlice of service `i`; `changed`: its first endpoint moved to [`CHANGED_IP`].
fn slice(i: u32, changed: bool) -> serde_json::Value {
    let endpoints: Vec<_> = (0..ENDPOINTS)
        .map(|j| {
            let ip = match (changed, j) {
                (true, 0) => CHANGED_IP.to_string(),
                _ => endpoint_ip(i * ENDPOINTS + j).to_string(),
            };
            json!({"addresses": [ip], "conditions": {"ready": true}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("svc-{i}-x"), "namespace": "scale",
                        "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
           "endpoints": endpoints})
}
