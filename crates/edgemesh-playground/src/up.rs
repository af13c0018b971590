//! `edgemesh playground up`: namespaces, links, NAT, the manifests directory, an agent per node
//! and the pods; waits until every agent is ready and every pod listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgemesh_telemetry::client::get_with;

use crate::agents::{self, ADMIN_ADDR};
use crate::host::{list_netns, require_root};
use crate::plan::{NODES, Plan};
use crate::pods::PODS;
use crate::state::{self, ProcessRecord, State};
use crate::{PlaygroundError, build, down, manifests, netns, procs};

/// How long an agent or a pod may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The gateway's process name and config file.
const GATEWAY: &str = "gateway/cloud";
const GATEWAY_CONFIG: &str = "edgemesh-gateway.yaml";

/// What `up` is asked to do.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub plan: Plan,
    /// The `edgemesh` binary run for agents and pods (normally the running one).
    pub binary: PathBuf,
    /// Start the agents with the tunnel (see [`crate::agents`]).
    pub tunnel: bool,
    /// The tunnel with `transport: quic`.
    pub quic: bool,
}

/// What `up` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpOutcome {
    /// A healthy playground was already up; nothing changed.
    AlreadyUp(State),
    /// Built from scratch (after removing leftovers when `cleaned` is non-empty).
    Built { state: State, cleaned: Vec<String> },
}

/// Builds the playground unless a healthy one is up. `say` receives progress lines.
pub fn up(options: &UpOptions, say: &mut dyn FnMut(&str)) -> Result<UpOutcome, PlaygroundError> {
    require_root()?;
    let plan = &options.plan;
    if let Some(state) = state::load(plan)?
        && healthy(&state)?
    {
        return Ok(UpOutcome::AlreadyUp(state));
    }
    let leftovers = down::find(plan)?;
    let cleaned = if leftovers.is_empty() {
        Vec::new()
    } else {
        say("found an incomplete playground (a crash or an interrupted run); removing it first");
        down::remove(plan, &leftovers, say)?
    };
    let state = build_and_start(options, say)?;
    Ok(UpOutcome::Built { state, cleaned })
}

/// Whether every namespace exists and every process of `state` is alive.
pub fn healthy(state: &State) -> Result<bool, PlaygroundError> {
    let present = list_netns()?;
    let namespaces = state.namespaces.iter().all(|n| present.contains(n));
    let processes = state.processes.iter().all(|p| state::alive(p.pid));
    Ok(namespaces && processes && !state.processes.is_empty())
}

fn build_and_start(
    options: &UpOptions,
    say: &mut dyn FnMut(&str),
) -> Result<State, PlaygroundError> {
    let plan = &options.plan;
    let dir = plan.state_dir();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| PlaygroundError::file(&logs, e))?;
    let (namespaces, files) = build::topology(plan)?;
    say(&format!(
        "created {} network namespaces ({}-*): cloud, LAN A (edge-a1, edge-a2), LAN B (edge-b1), 2 NAT routers, 1 switch",
        namespaces.len(),
        plan.prefix()
    ));
    let mut state = State {
        prefix: plan.prefix().to_owned(),
        tunnel: options.tunnel,
        namespaces,
        processes: Vec::new(),
        files,
    };
    state::save(plan, &state)?;
    let manifests = dir.join("manifests");
    let count = manifests::write_dir(&manifests)?;
    say(&format!(
        "wrote {count} manifest files to {}",
        manifests.display()
    ));
    let config = dir.join("edgemesh-agent.yaml");
    let psk = dir.join("psk");
    if options.tunnel {
        state::write_atomic(&psk, &new_psk()?)?;
    }
    state::write_atomic(
        &config,
        &agents::config_yaml(options.tunnel.then_some(&*psk), options.quic),
    )?;
    state::write_atomic(
        &dir.join(GATEWAY_CONFIG),
        &agents::gateway_config_yaml(options.tunnel.then_some(&*psk), options.quic),
    )?;
    let started = start_all(options, &config, &manifests, &logs, &mut state);
    state::save(plan, &state)?;
    started?;
    wait_ready(&state)?;
    say(&format!(
        "started {} agents (tunnel {}), the gateway on the cloud node and {} pods; all ready",
        NODES.len(),
        match (options.tunnel, options.quic) {
            (false, _) => "off",
            (true, false) => "on",
            (true, true) => "on, QUIC",
        },
        PODS.len()
    ));
    Ok(state)
}

/// Starts every agent and pod, recording each in `state` as it goes (so `down` can stop them
/// even if a later one fails).
fn start_all(
    options: &UpOptions,
    config: &Path,
    manifests: &Path,
    logs: &Path,
    state: &mut State,
) -> Result<(), PlaygroundError> {
    let plan = &options.plan;
    for node in &NODES {
        let args = agents::args(node, config, manifests, &plan.state_dir().join("nodes"));
        let name = format!("agent/{}", node.name);
        let ns = plan.netns(node.name);
        let record = procs::spawn_detached(&name, &ns, &options.binary, &args, logs)?;
        state.processes.push(record);
    }
    let gateway = agents::gateway_args(
        &plan.state_dir().join(GATEWAY_CONFIG),
        manifests,
        &plan.state_dir().join("nodes"),
    );
    let cloud = plan.netns(agents::relay_node().name);
    let record = procs::spawn_detached(GATEWAY, &cloud, &options.binary, &gateway, logs)?;
    state.processes.push(record);
    for pod in &PODS {
        let args: Vec<String> = [
            "playground",
            "pod",
            pod.program.as_str(),
            "--name",
            pod.name,
            "--port",
            &pod.port.to_string(),
            "--prefix",
            plan.prefix(),
        ]
        .map(str::to_owned)
        .to_vec();
        let name = format!("pod/{}", pod.name);
        let ns = plan.netns(pod.node);
        let record = procs::spawn_detached(&name, &ns, &options.binary, &args, logs)?;
        state.processes.push(record);
    }
    Ok(())
}

/// Waits for every agent's /readyz and every pod's "ready" line (one shared deadline).
fn wait_ready(state: &State) -> Result<(), PlaygroundError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for process in &state.processes {
        let left = deadline.saturating_duration_since(Instant::now());
        if process.name.starts_with("pod/") {
            procs::wait_for_log(&process.name, &process.log, crate::pod::READY, left)?;
        } else if process.name == GATEWAY {
            wait_gateway(process, state.tunnel, left)?;
        } else {
            wait_agent(process, state.tunnel, left)?;
        }
    }
    Ok(())
}

/// Ready, and with the tunnel connected to the relay (other nodes are reached through it on
/// first use), so the first `check` does not race the tunnel's start-up.
fn wait_agent(
    agent: &ProcessRecord,
    tunnel: bool,
    timeout: Duration,
) -> Result<(), PlaygroundError> {
    let relay = agents::relay_node().name;
    let is_relay = agent.name == format!("agent/{relay}");
    wait_until(agent, timeout, || {
        Ok(agent_ready(&agent.netns)?
            && (!tunnel
                || is_relay
                || relay_connected(&agent.netns, ADMIN_ADDR, relay)? && reserved(agent)))
    })
}

/// The gateway answers /readyz (its sources synced and its routes compiled) and, with the
/// tunnel on, its own tunnel peer is connected to the relay: until then its first requests to
/// replicas on other nodes would find no path (HTTP 503).
fn wait_gateway(
    gateway: &ProcessRecord,
    tunnel: bool,
    timeout: Duration,
) -> Result<(), PlaygroundError> {
    let relay = agents::relay_node().name;
    let admin = agents::GATEWAY_ADMIN_ADDR;
    wait_until(gateway, timeout, || {
        Ok(ready_at(&gateway.netns, admin)?
            && (!tunnel || relay_connected(&gateway.netns, admin, relay)?))
    })
}

/// Polls `ready` every 100 ms until it holds, the process dies or `timeout` passes.
fn wait_until(
    process: &ProcessRecord,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool, PlaygroundError>,
) -> Result<(), PlaygroundError> {
    let started = Instant::now();
    loop {
        if !state::alive(process.pid) {
            return Err(procs::not_ready(&process.name, timeout, &process.log));
        }
        if ready()? {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(procs::not_ready(&process.name, timeout, &process.log));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The relay holds a reservation for this node (the relay itself needs none), so peers in other
/// LANs can reach it through the relay from the first connection on.
fn reserved(agent: &ProcessRecord) -> bool {
    let relay = agents::relay_node().name;
    agent.name == format!("agent/{relay}")
        || std::fs::read_to_string(&agent.log)
            .is_ok_and(|log| log.contains("relay reservation accepted"))
}

/// Whether the agent of `netns` holds a connection to `relay` that its tunnel uses as the relay
/// connection (`/debug/peers`: `isRelay`). Any connection to the relay node is not enough: one
/// made by mDNS or by the relay's own dial used not to count, and circuits waited for our dial.
fn relay_connected(netns: &str, admin: SocketAddr, relay: &str) -> Result<bool, PlaygroundError> {
    netns::run_in(netns, || {
        let Ok((200, body)) = get_with(
            admin,
            "localhost",
            "/debug/peers",
            &[],
            Duration::from_secs(2),
        ) else {
            return false;
        };
        let peers: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        peers.iter().any(|p| {
            p.get("nodeName").and_then(|n| n.as_str()) == Some(relay)
                && p.get("isRelay").and_then(|r| r.as_bool()) == Some(true)
        })
    })
}

/// `GET /readyz` on the agent of `netns` answers 200.
pub(crate) fn agent_ready(netns: &str) -> Result<bool, PlaygroundError> {
    ready_at(netns, ADMIN_ADDR)
}

/// Whether the admin endpoint at `addr` in `netns` answers /readyz with 200.
fn ready_at(netns: &str, addr: std::net::SocketAddr) -> Result<bool, PlaygroundError> {
    netns::run_in(netns, || {
        get_with(addr, "localhost", "/readyz", &[], Duration::from_secs(2))
            .is_ok_and(|(status, _)| status == 200)
    })
}

/// Namespaces of `plan` that exist now (used to report what `up` would clash with).
pub fn existing_netns(plan: &Plan) -> Result<Vec<String>, PlaygroundError> {
    Ok(list_netns()?
        .into_iter()
        .filter(|n| plan.owns_netns(n))
        .collect())
}

/// A fresh pre-shared key file for the playground's mesh (EdgeMesh hashes the file's bytes).
fn new_psk() -> Result<String, PlaygroundError> {
    use std::io::Read;
    let path = Path::new("/dev/urandom");
    let mut key = [0u8; 32];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| PlaygroundError::file(path, e))?;
    Ok(key.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
}
