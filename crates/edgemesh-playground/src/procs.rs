//! Detached processes in node namespaces: agents and pods outlive `up` (own session via
//! `setsid`, stdin closed, output to a log file in the state directory).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::PlaygroundError;
use crate::state::ProcessRecord;

/// Starts `binary args` in `netns` detached; returns its record. `setsid` execs (our child is
/// never a process group leader) and so does `ip netns exec`, so the pid is the program's.
pub(crate) fn spawn_detached(
    name: &str,
    netns: &str,
    binary: &Path,
    args: &[String],
    log_dir: &Path,
) -> Result<ProcessRecord, PlaygroundError> {
    let log = log_dir.join(format!("{}.log", name.replace('/', "-")));
    let out = File::create(&log).map_err(|e| PlaygroundError::file(&log, e))?;
    let err = out
        .try_clone()
        .map_err(|e| PlaygroundError::file(&log, e))?;
    let child = Command::new("setsid")
        .args(["ip", "netns", "exec", netns])
        .arg(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| PlaygroundError::Spawn {
            command: format!("setsid ip netns exec {netns} {}", binary.display()),
            error: source,
        })?;
    // Not waited for: it runs on after `up` exits (then init reaps it).
    Ok(ProcessRecord {
        name: name.to_owned(),
        netns: netns.to_owned(),
        pid: child.id(),
        log,
    })
}

/// Waits until `log` contains `needle` or `timeout` passes; the error shows the log's tail.
pub(crate) fn wait_for_log(
    what: &str,
    log: &PathBuf,
    needle: &str,
    timeout: Duration,
) -> Result<(), PlaygroundError> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(not_ready(what, timeout, log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A [`PlaygroundError::NotReady`] carrying the last lines of `log`.
pub(crate) fn not_ready(what: &str, timeout: Duration, log: &Path) -> PlaygroundError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    PlaygroundError::NotReady {
        what: what.to_owned(),
        seconds: timeout.as_secs(),
        detail: format!("; {} says:\n{}", log.display(), tail.join("\n")),
    }
}
