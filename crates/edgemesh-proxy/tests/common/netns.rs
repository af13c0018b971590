//! A network namespace guard for the real-kernel tests (a local stand-in until
//! `edgemesh_testkit::netns::Netns` lands).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};

/// Fails (never skips) when the test cannot manage namespaces and netfilter.
pub fn require_root() {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    assert!(
        uid.is_ok_and(|out| String::from_utf8_lossy(&out).trim() == "0"),
        "this test needs root (network namespaces, nftables, IP_TRANSPARENT); run it as root"
    );
}

/// `em-px-<pid>-<n>` with `lo` up and 10.96.0.0/12 local; deleted on drop, also on panic.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        require_root();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = Netns {
            name: format!("em-px-{}-{n}", std::process::id()),
        };
        run("ip", &["netns", "add", &ns.name], None);
        ns.exec("ip", &["link", "set", "lo", "up"]);
        ns.exec(
            "ip",
            &["route", "add", "local", "10.96.0.0/12", "dev", "lo"],
        );
        ns
    }

    /// Runs a command inside the namespace; panics with its stderr on failure.
    pub fn exec(&self, program: &str, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name, program];
        full.extend_from_slice(args);
        run("ip", &full, None);
    }

    /// Loads an nft ruleset (one transaction) inside the namespace.
    pub fn nft(&self, rules: &str) {
        run(
            "ip",
            &["netns", "exec", &self.name, "nft", "-f", "-"],
            Some(rules),
        );
    }

    /// Runs `f` on a thread that entered the namespace (its sockets live there).
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        let handle = std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns: {e}"));
            f()
        });
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
