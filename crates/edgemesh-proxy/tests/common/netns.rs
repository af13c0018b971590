//! The test kit's network namespace, set up the way the proxy's kernel tests need it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use edgemesh_testkit::netns::require_root;

/// A namespace with `lo` up and 10.96.0.0/12 routed locally; deleted on drop, also on panic.
/// Fails (never skips) without root.
#[derive(Debug)]
pub struct Netns(edgemesh_testkit::netns::Netns);

impl Netns {
    pub fn new() -> Self {
        require_root();
        let ns = Self(edgemesh_testkit::netns::Netns::new("px").expect("create netns"));
        ns.exec(
            "ip",
            &["route", "add", "local", "10.96.0.0/12", "dev", "lo"],
        );
        ns
    }

    /// Runs a command inside the namespace; panics with its stderr on failure.
    pub fn exec(&self, program: &str, args: &[&str]) {
        self.0
            .exec_ok(program, args)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `ip netns exec <name> <program>`, to add arguments to and spawn.
    pub fn command(&self, program: &str) -> std::process::Command {
        self.0.command(program)
    }

    /// Loads an nft ruleset (one transaction) inside the namespace.
    pub fn nft(&self, rules: &str) {
        use std::io::Write;
        let mut child = self
            .0
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(rules.as_bytes())
            .expect("write rules");
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft -f failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `f` on a thread that entered the namespace (its sockets live there).
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.0.run(f)
    }
}
