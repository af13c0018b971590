//! Scale figures (issue #16 item 3): a release `edgemesh agent` with the nftables backend, in a
//! network namespace of its own, loaded with N Services of 3 endpoints each, either from the
//! apiserver test double (paged lists, as kube-apiserver) or from one manifests file. For each N
//! it prints: time to ready, time until the rules hold every frontend, the last full nftables
//! apply (`edgemesh_proxier_last_sync_microseconds`), VmRSS / VmHWM / RssAnon once settled, and
//! (API mode) one endpoint change: from the write in the double to the new backend in the
//! kernel's map (`nft get element`, polled every 5 ms), with the agent's CPU for it.
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
const POLL: Duration = Duration::from_millis(5);

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
        "| mode | services | endpoints | ready after | rules complete after | full apply | VmRSS | VmHWM | RssAnon | one endpoint change in nft | its apply | agent CPU for it |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
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
        "warn,edgemesh::agent=info",
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
    let change = api.map(|api| change_endpoint(&ns, &agent, &api, services / 2));
    let change = change.map_or("– | – | –".into(), |c| {
        format!(
            "{:.0} ms (probe {:.0} ms) | {:.0} ms | {:.0} ms",
            c.visible.as_secs_f64() * 1e3,
            c.probe.as_secs_f64() * 1e3,
            c.apply_micros as f64 / 1e3,
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
    visible: Duration,
    /// How long one `nft get element` took (the resolution of `visible`).
    probe: Duration,
    apply_micros: u64,
    cpu: Duration,
}

/// Moves one endpoint of service `i` to [`CHANGED_IP`] and waits until the kernel's map has it.
fn change_endpoint(ns: &Netns, agent: &Process, api: &ApiServer, i: u32) -> Change {
    let cpu_before = cpu(agent.pid());
    let written = Instant::now();
    api.apply(slice(i, true)).unwrap();
    let frontend = cluster_ip(i);
    let elements: Vec<String> = (0..ENDPOINTS)
        .map(|slot| format!("{frontend} . 80 . {slot}"))
        .collect();
    let query = format!("{{ {} }}", elements.join(", "));
    let mut probe;
    loop {
        let probed = Instant::now();
        let out = ns
            .exec(
                "nft",
                &["get", "element", "inet", "edgemesh", "fast4_rr_3", &query],
            )
            .unwrap();
        probe = probed.elapsed();
        if String::from_utf8_lossy(&out.stdout).contains(CHANGED_IP) {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(120),
            "the change never reached the rules"
        );
        std::thread::sleep(POLL);
    }
    let visible = written.elapsed();
    let cpu = cpu(agent.pid()) - cpu_before;
    Change {
        visible,
        probe,
        apply_micros: metric(agent, "edgemesh_proxier_last_sync_microseconds"),
        cpu,
    }
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

/// VmRSS, VmHWM and RssAnon in MiB.
struct Memory {
    rss: f64,
    hwm: f64,
    anon: f64,
}

impl Memory {
    fn of(pid: u32) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        Memory {
            rss: field("VmRSS:"),
            hwm: field("VmHWM:"),
            anon: field("RssAnon:"),
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
