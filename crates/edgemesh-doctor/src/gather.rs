//! The gatherers: each reads one thing from the node, bounded in time, and returns what it saw
//! or why it could not (as text). No judgement here: that is the checks' job.

pub mod api;
pub mod command;
pub mod dns;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plan::Plan;

/// An HTTP answer (status, body) or why there was none.
pub type Fetched = Result<(u16, String), String>;

/// Everything the checks judge.
#[derive(Debug)]
pub struct Facts {
    pub healthz: Fetched,
    pub readyz: Fetched,
    pub snapshot: Fetched,
    pub peers: Fetched,
    pub metrics: Fetched,
    /// `nft -j list ruleset`.
    pub nft: Result<String, String>,
    /// `iptables-save -t nat`.
    pub iptables: Result<String, String>,
    /// `net.ipv4.ip_local_port_range` and `ip_local_reserved_ports`.
    pub port_range: Result<String, String>,
    pub reserved_ports: Result<String, String>,
    /// The DNS query asked and its outcome.
    pub dns: Option<dns::Outcome>,
    pub resolv_conf: (PathBuf, Result<String, String>),
    pub api: Option<api::Outcome>,
    /// Size of the PSK file.
    pub psk: Option<Result<u64, String>>,
    /// Per relay address: connected, or why not.
    pub relays: Vec<RelayProbe>,
    pub hub_readyz: Option<Fetched>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayProbe {
    pub node_name: String,
    pub addr: SocketAddr,
    pub result: Result<(), String>,
}

/// What the user may change about the gathering.
#[derive(Clone, Debug)]
pub struct Options {
    pub timeout: Duration,
    pub resolv_conf: PathBuf,
    /// The name to ask the DNS server for (else one from the snapshot, else the API's).
    pub dns_name: Option<String>,
}

/// Gathers every fact, in parallel; returns within a few timeouts whatever answers.
pub fn gather(plan: &Plan, options: &Options) -> Facts {
    let t = options.timeout;
    let admin = plan.admin_addr;
    std::thread::scope(|s| {
        let get = |path: &'static str| s.spawn(move || fetch(admin, path, t));
        let healthz = get("/healthz");
        let readyz = get("/readyz");
        let snapshot = get("/debug/snapshot");
        let peers = get("/debug/peers");
        let metrics = get("/metrics");
        let nft = s.spawn(move || command::run("nft", &["-j", "list", "ruleset"], t));
        let iptables = s.spawn(move || command::run("iptables-save", &["-t", "nat"], t));
        let api = s.spawn(|| plan.api.as_ref().map(|a| api::probe(a, t)));
        let relays = s.spawn(|| probe_relays(plan, t));
        let hub = s.spawn(|| plan.hub_admin.map(|addr| fetch(addr, "/readyz", t)));
        let snapshot = join(snapshot);
        let dns = plan.dns.as_ref().map(|d| {
            let name = options.dns_name.clone().unwrap_or_else(|| {
                dns::name_to_ask(snapshot.as_ref().ok().map(|(_, b)| b.as_str()), d)
            });
            dns::ask(d.addr, &name, t)
        });
        Facts {
            healthz: join(healthz),
            readyz: join(readyz),
            snapshot,
            peers: join(peers),
            metrics: join(metrics),
            nft: join(nft),
            iptables: join(iptables),
            port_range: read("/proc/sys/net/ipv4/ip_local_port_range"),
            reserved_ports: read("/proc/sys/net/ipv4/ip_local_reserved_ports"),
            dns,
            resolv_conf: (options.resolv_conf.clone(), read(&options.resolv_conf)),
            api: join(api),
            psk: plan
                .tunnel
                .as_ref()
                .and_then(|t| t.psk_path.as_deref())
                .map(file_size),
            relays: join(relays),
            hub_readyz: join(hub),
        }
    })
}

/// `GET path` on an admin endpoint (plain HTTP on loopback).
fn fetch(addr: SocketAddr, path: &str, timeout: Duration) -> Fetched {
    edgemesh_telemetry::client::get(addr, path, timeout).map_err(|e| e.to_string())
}

/// A gatherer that panicked is a bug; its fact becomes the text of the panic, never a crash.
fn join<T: FromPanic>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|_| T::from_panic())
}

trait FromPanic {
    fn from_panic() -> Self;
}

impl<T> FromPanic for Result<T, String> {
    fn from_panic() -> Self {
        Err("the gatherer failed (a bug in edgemesh doctor)".to_owned())
    }
}

impl<T> FromPanic for Option<T> {
    fn from_panic() -> Self {
        None
    }
}

impl<T> FromPanic for Vec<T> {
    fn from_panic() -> Self {
        Vec::new()
    }
}

fn read(path: impl AsRef<Path>) -> Result<String, String> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn file_size(path: &Path) -> Result<u64, String> {
    // Read it: existing but unreadable is what the agent trips on too.
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|b| !b.is_ascii_whitespace()).count() as u64)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// A TCP connect to every address of every relay other than this node, in parallel.
///
/// A plain blocking socket, not one from `edgemesh-host`'s `SocketFactory`: the doctor probes
/// as any process on the node would (no bypass mark), from threads with no tokio runtime, and
/// the factory's sockets are tokio sockets registered with a runtime (docs/architecture.md,
/// "The host seam").
fn probe_relays(plan: &Plan, timeout: Duration) -> Vec<RelayProbe> {
    let Some(tunnel) = &plan.tunnel else {
        return Vec::new();
    };
    let targets: Vec<(String, SocketAddr)> = tunnel
        .other_relays(&plan.node_name)
        .flat_map(|r| r.addrs.iter().map(|a| (r.node_name.clone(), *a)))
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .into_iter()
            .map(|(node_name, addr)| {
                s.spawn(move || RelayProbe {
                    result: TcpStream::connect_timeout(&addr, timeout)
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    node_name,
                    addr,
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}
