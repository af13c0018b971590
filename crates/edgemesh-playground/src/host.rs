//! Commands run on the machine (`ip`, `nft`, ...) with errors that name the command.

use std::process::Command;

use crate::PlaygroundError;

/// Runs `program args`; Ok(stdout) when it exits 0, else an error with its stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, PlaygroundError> {
    let command = describe(program, args);
    let out =
        Command::new(program)
            .args(args)
            .output()
            .map_err(|error| PlaygroundError::Spawn {
                command: command.clone(),
                error,
            })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(PlaygroundError::Command {
        command,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// `ip ARGS`.
pub(crate) fn ip(args: &[&str]) -> Result<String, PlaygroundError> {
    run("ip", args)
}

/// `ip -n NETNS ARGS`: an `ip` command inside a namespace.
pub(crate) fn ip_in(netns: &str, args: &[&str]) -> Result<String, PlaygroundError> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Runs `program args` inside `netns` (`ip netns exec`).
pub(crate) fn exec_in(
    netns: &str,
    program: &str,
    args: &[&str],
) -> Result<String, PlaygroundError> {
    let mut all = vec!["netns", "exec", netns, program];
    all.extend_from_slice(args);
    ip(&all)
}

/// Names of every namespace `ip netns list` shows.
pub(crate) fn list_netns() -> Result<Vec<String>, PlaygroundError> {
    let out = ip(&["netns", "list"])?;
    // Lines look like "name" or "name (id: 3)".
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Pids of the processes living in `netns`.
pub(crate) fn netns_pids(netns: &str) -> Result<Vec<i32>, PlaygroundError> {
    let out = ip(&["netns", "pids", netns])?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Fails with [`PlaygroundError::NotRoot`] unless running as root.
pub fn require_root() -> Result<(), PlaygroundError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(PlaygroundError::NotRoot)
    }
}

fn describe(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}
