//! `edgemesh agent --cleanup` removes everything the agent installed, and rules survive a crash.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod common;

use common::{Agent, netns};

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
spec:\n  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]\n";

#[test]
fn agent_rules_survive_a_crash_and_cleanup_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.yaml"), SERVICE).unwrap();
    let mut agent = Agent::start(
        netns("clean"),
        &["--manifests", dir.path().to_str().unwrap()],
    )
    .ready();
    let ns = &agent.netns;
    let table = ns
        .exec_ok("nft", &["list", "table", "inet", "edgemesh"])
        .unwrap();
    assert!(
        table.contains("10.96.0.10 . tcp . 80") && table.contains("10.96.0.10 . udp . 53"),
        "{table}"
    );
    assert!(
        ns.exec_ok("ip", &["rule"])
            .unwrap()
            .contains("fwmark 0x2000 lookup 100")
    );

    // A crash leaves the rules in place, so a restarting agent takes over without a gap.
    agent.process.kill().unwrap();
    assert!(
        ns.exec_ok("nft", &["list", "tables"])
            .unwrap()
            .contains("inet edgemesh")
    );

    let local_before = ns
        .exec_ok("ip", &["route", "show", "table", "local"])
        .unwrap();
    assert!(local_before.contains("127.0.0.0/8"), "{local_before}");
    assert!(
        ns.exec("ip", &["link", "show", "edgemesh0"])
            .unwrap()
            .status
            .success()
    );
    // Another bridge device is left alone.
    ns.exec_ok("ip", &["link", "add", "other0", "type", "bridge"])
        .unwrap();

    let cleanup = ns
        .command(env!("CARGO_BIN_EXE_edgemesh"))
        .args(["agent", "--cleanup", "--node-name", "n"])
        .output()
        .unwrap();
    assert!(
        cleanup.status.success(),
        "{}",
        String::from_utf8_lossy(&cleanup.stderr)
    );
    assert_eq!(
        ns.exec_ok("nft", &["list", "ruleset"]).unwrap().trim(),
        "",
        "nftables left over"
    );
    assert!(
        !ns.exec_ok("ip", &["rule"]).unwrap().contains("fwmark"),
        "policy rule left over"
    );
    assert_eq!(
        ns.exec_ok("ip", &["route", "show", "table", "100"])
            .unwrap()
            .trim(),
        "",
        "route left over"
    );
    assert!(
        !ns.exec("ip", &["link", "show", "edgemesh0"])
            .unwrap()
            .status
            .success(),
        "the bridge device was left"
    );
    assert!(
        ns.exec("ip", &["link", "show", "other0"])
            .unwrap()
            .status
            .success()
    );
    // Only what we made goes: the kernel's local table (loopback, host addresses) keeps all but
    // the bridge device's address.
    let ours = |line: &&str| line.contains("169.254.96.16");
    let expected: Vec<&str> = local_before.lines().filter(|l| !ours(l)).collect();
    let after = ns
        .exec_ok("ip", &["route", "show", "table", "local"])
        .unwrap();
    assert_eq!(after.lines().collect::<Vec<_>>(), expected);
    let again = ns
        .command(env!("CARGO_BIN_EXE_edgemesh"))
        .args(["agent", "--cleanup", "--node-name", "n"])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "cleanup is idempotent: {}",
        String::from_utf8_lossy(&again.stderr)
    );
}
