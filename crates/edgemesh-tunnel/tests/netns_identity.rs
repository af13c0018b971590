//! Node identity across restarts and against impostors, with real processes in network
//! namespaces: every node holds a node certificate (`CN=system:node:<name>`) from one cluster
//! CA and attests its name with it.
//!
//! Topology as in `netns_tunnel.rs`: the cloud relay on the "internet" bridge, LAN A
//! 192.0.2.0/24 (a1, a2, a3) and LAN B 198.51.100.0/24 (b1), each behind a MASQUERADE router.
//! Needs root: fails loudly otherwise.

mod netns_support;
#[path = "../src/attest/test_certs.rs"]
mod test_certs;

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::Process;
use edgemesh_testkit::topology::Nat;
use netns_support::*;
use test_certs::TestCa;

/// Answers each connection with the client's address, then closes: which agent dialled.
const WHOAMI: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(128)
while True:
    c, a = s.accept(); c.sendall(a[0].encode()); c.close()
"#;

const RELAY: &str = "cloud=203.0.113.10";

/// The cluster CA, and the arguments that give a node its certificate, the CA and a pins file
/// (its state: `<state>.key` is the key, `<state>-pins.json` the bindings).
struct Cluster {
    ca: TestCa,
    ca_file: String,
}

impl Cluster {
    fn new(w: &World) -> Cluster {
        let ca = TestCa::new("cluster-ca");
        let ca_file = ca
            .write(w.dir.path(), "ca.crt")
            .to_string_lossy()
            .into_owned();
        Cluster { ca, ca_file }
    }

    /// `--cert`, `--cert-key` for a certificate naming `cert_name` (none: `None`), `--ca`, and
    /// `--pins` under `state`.
    fn args(&self, w: &World, cert_name: Option<&str>, state: &str) -> Vec<String> {
        let pins = w.dir.path().join(format!("{state}-pins.json"));
        let mut args = vec!["--ca".into(), self.ca_file.clone()];
        args.extend(["--pins".into(), pins.to_string_lossy().into_owned()]);
        if let Some(name) = cert_name {
            let (crt, key) = self
                .ca
                .node_cert(name)
                .write(w.dir.path(), &format!("{state}-node"));
            args.extend(["--cert".into(), crt.to_string_lossy().into_owned()]);
            args.extend(["--cert-key".into(), key.to_string_lossy().into_owned()]);
        }
        args
    }
}

impl Cluster {
    /// `--relay`, the identity arguments of [`Cluster::args`], then `extra`.
    fn node_args(
        &self,
        w: &World,
        cert_name: Option<&str>,
        state: &str,
        extra: &[&str],
    ) -> Vec<String> {
        let mut args = vec!["--relay".to_owned(), RELAY.to_owned()];
        args.extend(self.args(w, cert_name, state));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The first peer id in `line` (Ed25519 peer ids start `12D3KooW`; logs are coloured, so an id
/// is found by its shape).
fn first_peer_id(line: &str) -> Option<String> {
    let start = line.find("12D3KooW")?;
    let id = line[start..]
        .chars()
        .take_while(char::is_ascii_alphanumeric);
    Some(id.collect())
}

/// The peer id a node process logged when it came up.
fn peer_id(proc: &Process) -> Result<String> {
    let logs = proc.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("forwarders ready"))
        .context("no 'forwarders ready' line")?;
    first_peer_id(line).context("no peer id in the line")
}

/// `text` without the colours of the log (ANSI escape sequences).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\x1b') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// The peers `proc` refused (each refusal logs the node name, then the refused peer's id).
fn refused_peers(proc: &Process) -> Vec<String> {
    proc.logs()
        .lines()
        .filter(|l| l.contains("refusing peer"))
        .filter_map(first_peer_id)
        .collect()
}

/// The acceptance bound, from SIGKILL to traffic flowing both ways again.
const RECOVERY: Duration = Duration::from_secs(5);

/// Restart with an empty state dir, across NAT and in a LAN: b1 (LAN B, reached through the relay
/// or a punched path), then a2 (a1's LAN, found by mDNS), each killed, its key and bindings
/// deleted, and started again with a new key. Traffic between a1 and the node, both ways,
/// recovers within 5 s of the kill: the node proves its name with its certificate and every
/// peer rebinds the name at once.
#[test]
fn netns_identity_restart_with_empty_state_recovers() -> Result<()> {
    require_root();
    let (mut w, h) = World::build("tr", Nat::Masquerade)?;
    let psk = w.file("psk", "mesh-secret")?;
    let cluster = Cluster::new(&w);
    let backends = [
        (&h.a1, "a1", "192.0.2.10"),
        (&h.a2, "a2", "192.0.2.11"),
        (&h.b1, "b1", "198.51.100.10"),
    ];
    let mut eps = Vec::new();
    for (host, name, ip) in backends {
        w.python(host, ECHO_TCP, ip, 8080)?;
        let addr = format!("{ip}:8080");
        eps.push(w.file(&format!("{name}.json"), &endpoints(name, &[("TCP", &addr)]))?);
    }
    let cloud_args = cluster.node_args(&w, Some("cloud"), "cloud", &[]);
    let cloud = w.node(&h.cloud, "cloud", &psk, &strs(&cloud_args))?;
    let to_a1 = |port: u16| format!("127.0.0.1:{port}=a1/192.0.2.10:8080");
    let b1_args = cluster.node_args(&w, Some("b1"), "b1", &["--forward", &to_a1(7010)]);
    let b1 = w.node_serving(&h.b1, "b1", &psk, &strs(&b1_args), &eps[2])?;
    w.procs[b1].wait_for_log("relay reservation accepted", Duration::from_secs(20))?;
    let a2_args = cluster.node_args(&w, Some("a2"), "a2", &["--forward", &to_a1(7011)]);
    let a2 = w.node_serving(&h.a2, "a2", &psk, &strs(&a2_args), &eps[1])?;
    let a1_forward = [
        "--forward",
        "127.0.0.1:7002=b1/198.51.100.10:8080",
        "--forward",
        "127.0.0.1:7001=a2/192.0.2.11:8080",
    ];
    let a1_args = cluster.node_args(&w, Some("a1"), "a1", &a1_forward);
    let a1 = w.node_serving(&h.a1, "a1", &psk, &strs(&a1_args), &eps[0])?;
    let with_b1 = || -> Result<()> {
        tcp_echo(&h.a1, "127.0.0.1:7002", b"a1 to b1")?;
        tcp_echo(&h.b1, "127.0.0.1:7010", b"b1 to a1")
    };
    let with_a2 = || -> Result<()> {
        tcp_echo(&h.a1, "127.0.0.1:7001", b"a1 to a2")?;
        tcp_echo(&h.a2, "127.0.0.1:7011", b"a2 to a1")
    };
    eventually("a1 ⇄ b1, a1 ⇄ a2", Duration::from_secs(30), || {
        with_b1()?;
        with_a2()
    })
    .with_context(|| w.procs[a1].logs())?;

    let restarts = [
        (
            "b1",
            &h.b1,
            b1,
            &b1_args,
            &eps[2],
            &with_b1 as &dyn Fn() -> Result<()>,
        ),
        ("a2", &h.a2, a2, &a2_args, &eps[1], &with_a2),
    ];
    for (name, host, proc, args, ep, both_ways) in restarts {
        let old_peer = peer_id(&w.procs[proc])?;
        w.procs[proc].kill()?;
        let killed = Instant::now();
        for state in [format!("{name}.key"), format!("{name}-pins.json")] {
            std::fs::remove_file(w.dir.path().join(&state)).context(state)?;
        }
        let new = w.node_serving(host, name, &psk, &strs(args), ep)?;
        let started = killed.elapsed();
        eventually(
            &format!("a1 ⇄ {name} after its restart"),
            RECOVERY * 4,
            both_ways,
        )
        .with_context(|| format!("a1:\n{}", w.procs[a1].logs()))?;
        let recovered = killed.elapsed();
        let new_peer = peer_id(&w.procs[new])?;
        eprintln!(
            "{name} restarted with an empty state dir (new key {new_peer}, was {old_peer}): process up {started:?}, traffic both ways {recovered:?} after SIGKILL"
        );
        assert_ne!(new_peer, old_peer, "the state dir was emptied: a new key");
        assert!(
            recovered <= RECOVERY,
            "{name}: recovery took {recovered:?} (> {RECOVERY:?}); a1:\n{}",
            w.procs[a1].logs()
        );
        for (observer, proc) in [("a1", a1), ("cloud", cloud)] {
            // The relay may hear of the new key a moment after a1 does: the restarted node dials
            // its relays once its listen address is known (up to 2 s), and a busy machine adds more.
            let rebound = eventually(
                &format!("{observer} sees {name}'s new key"),
                RECOVERY,
                || {
                    anyhow::ensure!(w.procs[proc].logs().contains(&new_peer), "not yet");
                    Ok(())
                },
            );
            assert!(rebound.is_ok(), "{observer} never saw {name}'s new key");
            let refused = refused_peers(&w.procs[proc]);
            assert!(refused.is_empty(), "{observer} refused peers {refused:?}");
        }
    }
    Ok(())
}

/// A member with the PSK claims a2's name from a3, in a2's LAN, racing a1 whose state is fresh
/// (new key, no bindings): first an impostor with no certificate, then one with a valid
/// certificate for its own name (a3). The impostor is surely first: a1 starts while the real
/// a2 is down, and a2 comes back (with an empty state dir too) two seconds later. a1 sends a2's
/// traffic to the real a2 only — the backend, which answers with the address that dialled it,
/// never sees a3's — refuses the impostor, and never refuses the real a2; neither does the
/// relay. (With `--unattested tofu` on a1 the first round fails: the impostor is pinned and
/// answers, as in the incident this test reproduces.)
#[test]
fn netns_identity_impostor_never_gets_the_traffic() -> Result<()> {
    require_root();
    let (mut w, h) = World::build("ta", Nat::Masquerade)?;
    let psk = w.file("psk", "mesh-secret")?;
    let cluster = Cluster::new(&w);
    w.python(&h.a2, WHOAMI, "192.0.2.11", 8080)?;
    // The impostor serves "a2's" endpoint too: if it got a2's traffic, it would dial the
    // backend from 192.0.2.12.
    let ep_a2 = w.file("a2.json", &endpoints("a2", &[("TCP", "192.0.2.11:8080")]))?;
    let cloud_args = cluster.node_args(&w, Some("cloud"), "cloud", &[]);
    let cloud = w.node(&h.cloud, "cloud", &psk, &strs(&cloud_args))?;
    let a2_args = cluster.node_args(&w, Some("a2"), "a2", &[]);
    let forward = "127.0.0.1:7001";
    let a1_forward = format!("{forward}=a2/192.0.2.11:8080");

    let rounds = [
        ("no certificate", None),
        ("a valid certificate for a3", Some("a3")),
    ];
    for (round, (what, cert)) in rounds.into_iter().enumerate() {
        let state = format!("impostor{round}");
        let impostor_args = cluster.node_args(&w, cert, &state, &["--endpoints", &ep_a2]);
        let impostor = w.node_keyed(&h.a3, "a2", &state, &psk, &strs(&impostor_args))?;
        let impostor_peer = peer_id(&w.procs[impostor])?;
        let fresh = format!("a1-fresh{round}");
        let a1_args = cluster.node_args(&w, Some("a1"), &fresh, &["--forward", &a1_forward]);
        let a1 = w.node_keyed(&h.a1, "a1", &fresh, &psk, &strs(&a1_args))?;
        let early = whoami_answers(&h.a1, forward, usize::MAX, Duration::from_secs(2));
        // The real a2 comes (back) with an empty state dir: a new key.
        for file in ["a2.key", "a2-pins.json"] {
            let _ = std::fs::remove_file(w.dir.path().join(file));
        }
        let real = w.node_serving(&h.a2, "a2", &psk, &strs(&a2_args), &ep_a2)?;
        let real_peer = peer_id(&w.procs[real])?;
        let answers = whoami_answers(&h.a1, forward, 10, Duration::from_secs(20));
        eprintln!(
            "impostor with {what}: a2's backend saw {early:?} while a2 was down, then {answers:?}"
        );
        let logs = || format!("a1:\n{}", w.procs[a1].logs());
        assert!(
            early.iter().chain(&answers).all(|a| a == "192.0.2.11"),
            "a2's traffic reached the impostor ({what}): {early:?} {answers:?}\n{}",
            logs()
        );
        assert_eq!(answers.len(), 10, "the real a2 was not reached\n{}", logs());
        wait_log_count(&w.procs[a1], "refusing peer", 1, Duration::from_secs(10))?;
        for (name, proc) in [("a1", a1), ("cloud", cloud)] {
            let refused = refused_peers(&w.procs[proc]);
            assert!(
                !refused.contains(&real_peer),
                "{name} refused the real a2 ({real_peer}): {refused:?}"
            );
        }
        let refused_impostor = refused_peers(&w.procs[a1]).contains(&impostor_peer);
        assert!(refused_impostor, "a1 did not refuse the impostor ({what})");
        for proc in [a1, impostor, real] {
            w.procs[proc].kill()?;
        }
    }
    Ok(())
}

/// `psk.mode: pnet`, as while EdgeMesh's Go agents are in the mesh: b1 has no certificate (it
/// stands in for a Go agent, which never attests), the relay and a1 have theirs. `auto` is then
/// trust-on-first-use for unattested names, so b1 is accepted and traffic flows both ways; the
/// certified nodes still attest to each other.
#[test]
fn netns_identity_pnet_mesh_keeps_members_without_certificates() -> Result<()> {
    require_root();
    let (mut w, h) = World::build("tp", Nat::Masquerade)?;
    let psk = w.file("psk", "mesh-secret")?;
    let cluster = Cluster::new(&w);
    w.python(&h.a1, ECHO_TCP, "192.0.2.10", 8080)?;
    w.python(&h.b1, ECHO_TCP, "198.51.100.10", 8080)?;
    let ep_a1 = w.file("a1.json", &endpoints("a1", &[("TCP", "192.0.2.10:8080")]))?;
    let ep_b1 = w.file(
        "b1.json",
        &endpoints("b1", &[("TCP", "198.51.100.10:8080")]),
    )?;
    let cloud_args = cluster.node_args(&w, Some("cloud"), "cloud", &["--pnet"]);
    let cloud = w.node(&h.cloud, "cloud", &psk, &strs(&cloud_args))?;
    let b1_extra = ["--pnet", "--forward", "127.0.0.1:7010=a1/192.0.2.10:8080"];
    let b1_args = cluster.node_args(&w, None, "b1", &b1_extra);
    let b1 = w.node_serving(&h.b1, "b1", &psk, &strs(&b1_args), &ep_b1)?;
    w.procs[b1].wait_for_log("relay reservation accepted", Duration::from_secs(20))?;
    let a1_extra = [
        "--pnet",
        "--forward",
        "127.0.0.1:7002=b1/198.51.100.10:8080",
    ];
    let a1_args = cluster.node_args(&w, Some("a1"), "a1", &a1_extra);
    let a1 = w.node_serving(&h.a1, "a1", &psk, &strs(&a1_args), &ep_a1)?;
    eventually("a1 ⇄ b1 in a pnet mesh", Duration::from_secs(30), || {
        tcp_echo(&h.a1, "127.0.0.1:7002", b"a1 to b1")?;
        tcp_echo(&h.b1, "127.0.0.1:7010", b"b1 to a1")
    })
    .with_context(|| w.procs[a1].logs())?;
    let logs = plain(&w.procs[a1].logs());
    assert!(
        logs.contains("unattested_peers=trusted on first use"),
        "auto in pnet mode must be TOFU:\n{logs}"
    );
    assert!(
        logs.contains("node name attested") && logs.contains("node=cloud"),
        "the certified relay still attests:\n{logs}"
    );
    for (name, proc) in [("a1", a1), ("cloud", cloud), ("b1", b1)] {
        let refused = refused_peers(&w.procs[proc]);
        assert!(refused.is_empty(), "{name} refused peers {refused:?}");
    }
    Ok(())
}

/// Connects through `addr` (in `ns`) as fast as the tunnel allows until `want` answers came
/// back or `window` is over: the answers (the first ones race the impostor).
fn whoami_answers(ns: &Netns, addr: &str, want: usize, window: Duration) -> Vec<String> {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return Vec::new();
    };
    let start = Instant::now();
    let mut answers = Vec::new();
    while answers.len() < want && start.elapsed() < window {
        match ns.run(|| whoami(addr)) {
            Ok(answer) => answers.push(answer),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    answers
}

fn whoami(addr: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    anyhow::ensure!(!answer.is_empty(), "the tunnel closed the connection");
    Ok(answer)
}
