//! End to end: `edgemesh playground up --quic`, `check` (every check passes, across the LANs
//! through the tunnel too; the table is printed), `exec`, `down`, and nothing left behind on the
//! host: the same `ip netns list`, `ip link`, `nft list ruleset`, `iptables-save` and no
//! playground process. The agents run the tunnel with `transport: quic` here (and `/debug/peers`
//! must show QUIC in use); `scripts/demo.sh`, which CI runs too, covers the default TCP.
//! Runs under its own prefix so it never touches a user's playground (`emp`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic

use std::process::{Command, Output};

use edgemesh_testkit::netns::require_root;

const PREFIX: &str = "empe2e";

fn playground(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_edgemesh"))
        .arg("playground")
        .args(args)
        .env("EDGEMESH_PLAYGROUND_PREFIX", PREFIX)
        .output()
        .expect("run edgemesh playground");
    eprintln!(
        "$ edgemesh playground {} → {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `down` on drop, so a failing assertion still leaves nothing behind.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        playground(&["down"]);
    }
}

/// What must be the same before `up` and after `down`.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    netns: Vec<String>,
    links: Vec<String>,
    nft: String,
    iptables: String,
    netns_etc: Vec<String>,
    processes: Vec<String>,
}

fn text(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn host_state() -> HostState {
    let mine = |s: &str| s.starts_with(&format!("{PREFIX}-"));
    let netns = text("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|n| mine(n))
        .collect();
    let mut links: Vec<String> = text("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(String::from))
        .collect();
    links.sort();
    // Counters and the generation comment change on their own.
    let iptables = text("iptables-save", &[])
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(':'))
        .collect::<Vec<_>>()
        .join("\n");
    let netns_etc = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| mine(n))
                .collect()
        })
        .unwrap_or_default();
    HostState {
        netns,
        links,
        nft: text("nft", &["list", "ruleset"]),
        iptables,
        netns_etc,
        processes: playground_processes(),
    }
}

/// The end of each agent's log, to tell why a check failed (`down` removes them).
fn agent_logs() -> String {
    let dir = format!("/run/edgemesh-playground/{PREFIX}/logs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return format!("(no logs in {dir})");
    };
    let mut out = String::new();
    for entry in entries.filter_map(Result::ok) {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        out += &format!("--- {}\n{}\n", entry.path().display(), tail.join("\n"));
    }
    out
}

/// Command lines of processes that belong to this test's playground.
fn playground_processes() -> Vec<String> {
    let marker = format!("/run/edgemesh-playground/{PREFIX}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let labelled = cmdline.contains(&format!("--prefix {PREFIX} "));
        if labelled || cmdline.contains(&marker) || cmdline.contains(&format!("{PREFIX}-")) {
            found.push(cmdline);
        }
    }
    found
}

#[test]
fn e2e_playground_up_check_exec_down_leaves_nothing_behind() {
    require_root();
    // A previous run killed mid-way must not decide this one.
    playground(&["down"]);
    let before = host_state();
    let guard = Down;

    let up = playground(&["up", "--quic"]);
    assert!(up.status.success(), "up failed");
    assert!(stdout(&up).contains("(tunnel on, QUIC)"), "{}", stdout(&up));
    let again = playground(&["up", "--quic"]);
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("already up"),
        "second up must say it changed nothing"
    );

    let check = playground(&["check"]);
    let table = stdout(&check);
    println!("{table}");
    assert!(
        check.status.success(),
        "a check failed:\n{table}\n{}",
        agent_logs()
    );
    assert!(table.contains("CHECK") && table.contains("RESULT") && table.contains("TIME"));
    assert!(!table.contains("FAIL"), "{table}");
    // The agents run the tunnel: the cross-LAN checks run too, none is skipped.
    assert!(!table.contains("SKIP"), "{table}");
    // The ingress gateway on the cloud node reaches the replicas in both LANs (tunnel).
    assert!(
        table
            .lines()
            .any(|l| l.contains("gateway reaches all replicas") && l.contains(" PASS ")),
        "{table}"
    );
    let passed = table.lines().filter(|l| l.contains(" PASS ")).count();
    assert!(passed >= 30, "only {passed} checks passed:\n{table}");

    // The two nodes of LAN A talk over QUIC (they met over TCP first).
    let quic_in_use = (0..20).any(|_| {
        let peers = playground(&[
            "exec",
            "edge-a1",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "2",
            "127.0.0.1:10557/debug/peers",
        ]);
        let quic = stdout(&peers).contains(r#""transport": "quic""#);
        if !quic {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        quic
    });
    assert!(quic_in_use, "no QUIC path on edge-a1:\n{}", agent_logs());

    // By hand, as in EdgeMesh's guide: curl by name from a node (its resolv.conf → the agent).
    let curl = playground(&[
        "exec",
        "edge-a2",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        "hostname-lb-svc.edgemesh-test:12345",
    ]);
    assert!(curl.status.success());
    assert!(
        stdout(&curl).starts_with("hostname-edge-"),
        "{}",
        stdout(&curl)
    );

    let down = playground(&["down"]);
    assert!(down.status.success());
    assert!(stdout(&down).contains("deleted network namespace"));
    let twice = playground(&["down"]);
    assert!(twice.status.success());
    assert!(stdout(&twice).contains("nothing to remove"));
    drop(guard);

    let after = host_state();
    assert_eq!(
        before, after,
        "the host changed between before `up` and after `down`"
    );
}
