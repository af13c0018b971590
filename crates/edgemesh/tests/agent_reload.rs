//! Issue acceptance (#12): `relayNodes` changed in the config file apply while the agent runs,
//! as EdgeMesh reloads them when its ConfigMap changes; an invalid change keeps the running
//! settings.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use edgemesh_testkit::netns::require_root;
use edgemesh_testkit::process::Process;
use edgemesh_testkit::topology::Topology;

/// The relay's address, on a host linked to the agent's, where a plain listener stands in for
/// a relay (the agent listens on the same port on its own host).
const RELAY_IP: &str = "198.51.100.9";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// kubelet needs up to a minute to update a ConfigMap volume; the agent polls every 3 s.
const RELOAD_WITHIN: Duration = Duration::from_secs(10);

fn config(psk: &str, relays: &str) -> String {
    format!(
        "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n\
         modules:\n  edgeDNS:\n    enable: false\n  edgeProxy:\n    enable: false\n  \
         edgeTunnel:\n    enable: true\n    psk:\n      path: {psk}\n{relays}"
    )
}

/// Waits for one TCP connection on `listener`; returns how long it took.
fn wait_for_dial(listener: &TcpListener, within: Duration) -> Option<Duration> {
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    while started.elapsed() < within {
        match listener.accept() {
            Ok(_) => return Some(started.elapsed()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

#[test]
fn agent_applies_changed_relay_nodes_without_a_restart() {
    require_root();
    let mut topology = Topology::new("reload").unwrap();
    let node = topology.host("node").unwrap();
    let relay_host = topology.host("relay").unwrap();
    let relay_cidr = format!("{RELAY_IP}/24");
    topology
        .link(&node, "198.51.100.1/24", &relay_host, &relay_cidr)
        .unwrap();
    let relay = relay_host
        .netns()
        .run(|| TcpListener::bind(format!("{RELAY_IP}:20006")))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("psk");
    std::fs::write(&psk, "a pre-shared key\n").unwrap();
    let psk = psk.to_str().unwrap();
    let file = dir.path().join("edgemesh-agent.yaml");
    std::fs::write(&file, config(psk, "")).unwrap();
    let manifests = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let args = [
        "agent",
        "--config",
        file.to_str().unwrap(),
        "--manifests",
        manifests.path().to_str().unwrap(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--admin-addr",
        "127.0.0.1:0",
        "--node-name",
        "node-a",
    ];
    let bin = env!("CARGO_BIN_EXE_edgemesh");
    let mut agent = Process::start(bin, &args, Some(node.netns())).unwrap();
    if let Err(e) = agent.wait_ready(READY_TIMEOUT) {
        panic!("agent not ready: {e}\n{}", agent.logs());
    }
    assert_eq!(
        wait_for_dial(&relay, Duration::from_secs(1)),
        None,
        "no relay yet"
    );

    // An invalid change is reported and changes nothing.
    std::fs::write(&file, config(psk, "    transport: pigeon\n")).unwrap();
    agent
        .wait_for_log("keeping the running settings", RELOAD_WITHIN)
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.logs()));

    // Written as kubelet does: a new file renamed over the old one.
    let relays = format!(
        "    relayNodes:\n    - nodeName: R9\n      advertiseAddress:\n      - {RELAY_IP}\n"
    );
    let next = dir.path().join("next.yaml");
    std::fs::write(&next, config(psk, &relays)).unwrap();
    std::fs::rename(&next, &file).unwrap();
    let took = wait_for_dial(&relay, RELOAD_WITHIN)
        .unwrap_or_else(|| panic!("the new relay was never dialed\n{}", agent.logs()));
    eprintln!("new relay dialed {took:?} after the file changed");
    assert!(
        agent
            .logs()
            .contains("relay nodes reloaded relays=[\"R9\"]"),
        "{}",
        agent.logs()
    );
    assert_eq!(agent.http_get("/readyz").unwrap().0, 200);
}
