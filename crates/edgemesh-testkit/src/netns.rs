//! Network namespaces for tests that need the real kernel.
//!
//! A [`Netns`] is created with `ip netns add`, has `lo` up, and is deleted on drop — also while a
//! failing test unwinds — after every process still running inside it has been killed. Sockets
//! are created inside a namespace with [`Netns::run`], which runs a closure on a fresh thread
//! that has `setns()`'d into it; the calling thread never changes namespace.

use std::io;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Panics with a clear message unless the test runs as root (it needs CAP_NET_ADMIN).
///
/// Tests that need the kernel call this first: they must fail loudly, never skip.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!("this test needs root (CAP_NET_ADMIN): run as root / in CI");
    }
}

/// Ports our binaries listen on by default that fall in Linux's ephemeral port range.
const RESERVED_PORTS: &str = "40001";

/// A uniquely named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `em-<tag>-<pid>-<n>` and brings `lo` up.
    pub fn new(tag: &str) -> io::Result<Netns> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("em-{tag}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on the guard owns the namespace: an error below still deletes it.
        let ns = Netns { name };
        ns.exec_ok("ip", &["link", "set", "lo", "up"])?;
        // The agent's proxy port (EdgeMesh's 40001) lies in Linux's ephemeral range: an outgoing
        // connection made first (a hub dialling the apiserver double) could take it and fail the
        // agent's start. Reserve it, as an operator would on a node (docs/troubleshooting.md).
        let reserve = format!("echo {RESERVED_PORTS} > /proc/sys/net/ipv4/ip_local_reserved_ports");
        ns.exec_ok("sh", &["-c", &reserve])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name> <program>`: add arguments, then spawn or run it.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program args` inside the namespace and returns its output, whatever its exit status.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        self.command(program).args(args).output()
    }

    /// Runs `program args` inside the namespace; an error names the command and its stderr
    /// unless it exits 0. Returns its stdout.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> io::Result<String> {
        run_ok(self.command(program).args(args))
    }

    /// Runs `f` on a fresh thread that has entered this namespace, so sockets it creates belong
    /// here. A panic in `f` is resumed on the caller's thread.
    pub fn run<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        run_in(&self.name, f)
    }

    /// Pids of every process living in the namespace (`ip netns pids`).
    pub fn pids(&self) -> io::Result<Vec<i32>> {
        let out = run_ok(Command::new("ip").args(["netns", "pids", &self.name]))?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }

    /// Kills (SIGKILL) every process living in the namespace.
    pub fn kill_all(&self) -> io::Result<()> {
        for pid in self.pids()? {
            // It may have exited meanwhile: nothing to do then.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

/// Runs `f` on a fresh thread inside the named namespace (see [`Netns::run`]).
///
/// Panics when the namespace cannot be entered: that is a broken test set-up.
pub fn run_in<F, T>(netns_name: &str, f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    edgemesh_host::in_named_netns(netns_name, f)
        .unwrap_or_else(|e| panic!("cannot enter network namespace {netns_name}: {e}"))
}

/// Kills what runs inside `name`, then deletes it. Best effort: used from `Drop`.
fn delete_netns(name: &str) {
    // Processes keep a namespace alive after `ip netns del`; kill them first, a few rounds in
    // case one was forking.
    for _ in 0..3 {
        let pids = Command::new("ip").args(["netns", "pids", name]).output();
        let Ok(out) = pids else { break };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let pids: Vec<i32> = text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let deleted = Command::new("ip").args(["netns", "del", name]).output();
    if let Ok(out) = deleted
        && !out.status.success()
    {
        eprintln!(
            "edgemesh-testkit: could not delete network namespace {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

/// Names of every namespace `ip netns list` shows.
pub fn list_netns() -> io::Result<Vec<String>> {
    let out = run_ok(Command::new("ip").args(["netns", "list"]))?;
    // Lines look like "name" or "name (id: 3)".
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Deletes leftover namespaces named `<prefix>...-<pid>-<n>` whose creating process is dead
/// (a test run that was killed before its guards could drop). Returns the names deleted.
pub fn cleanup_stale(prefix: &str) -> io::Result<Vec<String>> {
    let mut deleted = Vec::new();
    for name in list_netns()? {
        if !name.starts_with(prefix) {
            continue;
        }
        let Some(pid) = creator_pid(&name) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_netns(&name);
            deleted.push(name);
        }
    }
    Ok(deleted)
}

/// The pid in a `...-<pid>-<n>` name.
fn creator_pid(name: &str) -> Option<u32> {
    let mut parts = name.rsplit('-');
    let _counter: u32 = parts.next()?.parse().ok()?;
    parts.next()?.parse().ok()
}

/// Runs a command; an error names it and its stderr unless it exits 0. Returns stdout.
pub(crate) fn run_ok(cmd: &mut Command) -> io::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", describe(cmd))))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(io::Error::other(format!(
        "`{}` failed ({}): {}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_pid_is_read_from_the_end_of_the_name() {
        let cases = [
            ("em-a-123-0", Some(123)),
            ("em-with-dashes-77-12", Some(77)),
            ("em-a-x-1", None),
            ("em-a-123-x", None),
            ("plain", None),
        ];
        for (name, want) in cases {
            assert_eq!(creator_pid(name), want, "{name}");
        }
    }
}
