//! Running `nft` and `iptables-save` with a deadline: a hung command is killed, never waited on.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// stdout of `program args`, or why there is none (not installed, not root, timed out).
pub fn run(program: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    // Read in threads so a full pipe cannot block the child while we wait for it.
    let stdout = child.stdout.take().map(reader);
    let stderr = child.stderr.take().map(reader);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown}: no answer within {timeout:?}"));
            }
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    };
    let collect = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (out, err) = (collect(stdout), collect(stderr));
    match status.success() {
        true => Ok(out),
        false => Err(format!("{shown}: {status}: {}", err.trim())),
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_failure_absence_and_timeout_are_told_apart() {
        let t = Duration::from_secs(5);
        assert_eq!(run("echo", &["hi"], t).unwrap(), "hi\n");
        let err = run("sh", &["-c", "echo nope >&2; exit 3"], t).unwrap_err();
        assert!(err.contains("nope") && err.contains('3'), "{err}");
        let err = run("/nonexistent/nft", &[], t).unwrap_err();
        assert!(err.starts_with("cannot run /nonexistent/nft"), "{err}");
        let started = Instant::now();
        let err = run("sleep", &["10"], Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("no answer within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
