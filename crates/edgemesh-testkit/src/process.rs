//! Start the real `edgemesh` binary (optionally inside a [`Netns`]) and drive it.
//!
//! Output (stdout and stderr) goes to a log file in a temp dir, kept until drop so that a failing
//! test can print [`Process::logs`]. Every wait is bounded. Dropping a [`Process`] kills it.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::netns::{Netns, run_in};

/// What the agent, the gateway and the hub log once their admin server is bound; the address is
/// the line's `listen.addr` field.
pub const ADMIN_LISTENING: &str = "admin endpoint listening";

const POLL: Duration = Duration::from_millis(50);

/// Finds the `edgemesh` binary for tests of crates other than the binary crate.
///
/// Looks at `EDGEMESH_BIN`, then next to the running test executable (`target/<profile>/`),
/// then `$CARGO_TARGET_DIR/{debug,release}` and the workspace's `target/{debug,release}`. Inside
/// the binary crate's own tests use `env!("CARGO_BIN_EXE_edgemesh")` instead.
pub fn edgemesh_bin() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("EDGEMESH_BIN") {
        return Ok(PathBuf::from(path));
    }
    let candidates = bin_candidates();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "edgemesh binary not found (looked at {candidates:?}); run `cargo build -p edgemesh` first or set EDGEMESH_BIN"
            ),
        )
    })
}

fn bin_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    // target/<profile>/deps/<test> → target/<profile>
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        dirs.push(profile_dir.to_path_buf());
    }
    let workspace_target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let targets = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_target]);
    for target in targets {
        dirs.push(target.join("debug"));
        dirs.push(target.join("release"));
    }
    dirs.into_iter().map(|d| d.join("edgemesh")).collect()
}

/// A running process with captured output.
#[derive(Debug)]
pub struct Process {
    child: Child,
    netns: Option<String>,
    log_path: PathBuf,
    _log_dir: tempfile::TempDir,
    admin: Option<SocketAddr>,
}

impl Process {
    /// Starts `program args`, inside `netns` when given (`ip netns exec` execs in place, so
    /// [`Process::pid`] is the program's own pid).
    pub fn start(
        program: impl AsRef<Path>,
        args: &[&str],
        netns: Option<&Netns>,
    ) -> io::Result<Process> {
        Self::start_with(program, args, netns, &[])
    }

    /// Like [`Process::start`] with extra environment variables.
    pub fn start_with(
        program: impl AsRef<Path>,
        args: &[&str],
        netns: Option<&Netns>,
        env: &[(&str, &str)],
    ) -> io::Result<Process> {
        let program = program.as_ref();
        let log_dir = tempfile::Builder::new()
            .prefix("edgemesh-test-")
            .tempdir()?;
        let log_path = log_dir.path().join("output.log");
        let log = File::create(&log_path)?;
        let mut cmd = match netns {
            Some(ns) => ns.command(&program.to_string_lossy()),
            None => Command::new(program),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", program.display()))
        })?;
        Ok(Process {
            child,
            netns: netns.map(|n| n.name().to_owned()),
            log_path,
            _log_dir: log_dir,
            admin: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where stdout and stderr are written.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process printed so far (lossy UTF-8; empty if unreadable).
    pub fn logs(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until a log line contains `needle`; returns that line. Fails early if the process
    /// exits, and at `timeout`; both errors carry the log.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if let Some(line) = logs.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(&format!("exited ({status}) before logging {needle:?}")));
            }
            if Instant::now() >= deadline {
                return Err(
                    self.failure(&format!("no log line with {needle:?} within {timeout:?}"))
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The admin address the agent logged (`listen.addr` of its `admin endpoint listening` line).
    pub fn admin_addr(&mut self, timeout: Duration) -> io::Result<SocketAddr> {
        if let Some(addr) = self.admin {
            return Ok(addr);
        }
        let line = self.wait_for_log(ADMIN_LISTENING, timeout)?;
        let addr = parse_admin_addr(&line)
            .ok_or_else(|| self.failure(&format!("no address in log line {line:?}")))?;
        self.admin = Some(addr);
        Ok(addr)
    }

    /// Polls `GET /readyz` until it answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        self.admin_addr(timeout)?;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            match self.http_get("/readyz") {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => last = format!("{status} {body}"),
                Err(e) => last = e.to_string(),
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failure(&format!("exited ({status}) before becoming ready")));
            }
            std::thread::sleep(POLL * 2);
        }
        Err(self.failure(&format!(
            "not ready within {timeout:?}; last /readyz: {last}"
        )))
    }

    /// `GET path` on the admin endpoint (from inside the process's namespace when it has one).
    /// Call [`Process::admin_addr`] first.
    pub fn http_get(&self, path: &str) -> io::Result<(u16, String)> {
        let addr = self.admin.ok_or_else(|| {
            io::Error::other("admin address unknown: call admin_addr() or wait_ready() first")
        })?;
        let timeout = Duration::from_secs(5);
        match &self.netns {
            Some(ns) => run_in(ns, || crate::http::get(addr, path, timeout)),
            None => crate::http::get(addr, path, timeout),
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.child.kill()?;
        self.child.wait()
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit; an error (with the log) if it did
    /// not exit in time (the process is then killed).
    pub fn terminate(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let pid = Pid::from_raw(i32::try_from(self.pid()).map_err(io::Error::other)?);
        kill(pid, Signal::SIGTERM).map_err(io::Error::from)?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(POLL);
        }
        let _ = self.kill();
        Err(self.failure(&format!("did not exit within {timeout:?} of SIGTERM")))
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(POLL);
        }
        Err(self.failure(&format!("still running after {timeout:?}")))
    }

    fn failure(&self, what: &str) -> io::Error {
        io::Error::other(format!(
            "process {} {what}; its output ({}):\n{}",
            self.pid(),
            self.log_path.display(),
            self.logs()
        ))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The `listen.addr` of an [`ADMIN_LISTENING`] log line.
pub fn parse_admin_addr(line: &str) -> Option<SocketAddr> {
    line.contains(ADMIN_LISTENING).then_some(())?;
    listen_addr(line)
}

/// The `listen.addr` field of a log line (`listen.addr=ADDR` in text, `"listen.addr":"ADDR"` in
/// JSON), as the binary logs what it listens on.
pub fn listen_addr(line: &str) -> Option<SocketAddr> {
    log_field(line, "listen.addr")?.parse().ok()
}

/// The value of field `name` in a log line, text (`name=value`, quotes removed) or JSON
/// (`"name":"value"`); a text value ends at the first space.
pub fn log_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let text = format!(" {name}=");
    let json = format!("\"{name}\":");
    let rest = if let Some(at) = line.find(&text) {
        &line[at + text.len()..]
    } else {
        let at = line.find(&json)?;
        &line[at + json.len()..]
    };
    let rest = rest.trim_start_matches(['"', '\\']);
    rest.split(|c: char| c.is_whitespace() || matches!(c, '"' | ',' | '}' | '\\'))
        .next()
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_addr_is_found_in_many_log_formats() {
        let cases = [
            (
                "2026-12-06T20:00:00Z  INFO edgemesh::mesh: admin endpoint listening listen.addr=127.0.0.1:4001",
                Some("127.0.0.1:4001"),
            ),
            (
                r#"{"fields":{"message":"admin endpoint listening","listen.addr":"127.0.0.1:80"},"level":"INFO"}"#,
                Some("127.0.0.1:80"),
            ),
            (
                "admin endpoint listening listen.addr=\"127.0.0.1:9\" pid=3",
                Some("127.0.0.1:9"),
            ),
            (
                "admin endpoint listening listen.addr=[::1]:8080 extra=1",
                Some("[::1]:8080"),
            ),
            ("admin endpoint listening listen.addr=nowhere", None),
            ("admin endpoint listening", None),
            ("tunnel listening listen.addr=127.0.0.1:9", None),
            ("something else", None),
        ];
        for (line, want) in cases {
            let want = want.map(|w| w.parse::<SocketAddr>().unwrap());
            assert_eq!(parse_admin_addr(line), want, "{line}");
        }
    }
}
