//! The seam through which every netfilter tool runs: tests run the same commands inside a
//! network namespace, the agent in its own.

use std::fmt::Debug;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{NetfilterError, Result};
use crate::nft::Batch;

/// Runs one program with arguments and optional stdin; returns stdout.
pub trait CommandRunner: Debug + Send + Sync {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String>;

    /// Sends one nf_tables netlink batch where `run` would run `nft`, and waits for the kernel's
    /// answer.
    fn nftables_batch(&self, batch: &Batch) -> Result<()>;
}

/// Runs commands on this machine, optionally inside a named network namespace
/// (`ip netns exec <ns> ...`).
#[derive(Clone, Debug, Default)]
pub struct SystemRunner {
    netns: Option<String>,
}

impl SystemRunner {
    /// Runs in the caller's own namespace (what the agent does).
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs inside the network namespace `name` (created with `ip netns add`).
    pub fn in_netns(name: impl Into<String>) -> Self {
        Self {
            netns: Some(name.into()),
        }
    }

    fn command_line(&self, program: &str, args: &[&str]) -> Vec<String> {
        let mut line = Vec::with_capacity(args.len() + 4);
        if let Some(ns) = &self.netns {
            line.extend(["ip", "netns", "exec", ns.as_str()].map(String::from));
        }
        line.push(program.to_string());
        line.extend(args.iter().map(|a| a.to_string()));
        line
    }
}

impl CommandRunner for SystemRunner {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let line = self.command_line(program, args);
        let command = line.join(" ");
        let spawn_error = |error| NetfilterError::Spawn {
            command: command.clone(),
            error,
        };
        let mut child = Command::new(&line[0])
            .args(&line[1..])
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // Dropping the pipe after writing closes it, so the tool sees end of input.
            pipe.write_all(input.as_bytes()).map_err(spawn_error)?;
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        if !output.status.success() {
            return Err(NetfilterError::Failed {
                command,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        String::from_utf8(output.stdout).map_err(|_| NetfilterError::NotUtf8 { command })
    }

    fn nftables_batch(&self, batch: &Batch) -> Result<()> {
        let send = || edgemesh_host::nftables_transaction(&batch.bytes, batch.acks);
        match &self.netns {
            None => send(),
            Some(ns) => edgemesh_host::in_named_netns(ns, send).map_err(|error| {
                NetfilterError::Netlink(edgemesh_host::NetError::Nftables { error })
            })?,
        }
        .map_err(NetfilterError::Netlink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_runner_prefixes_ip_netns_exec() {
        let line = SystemRunner::in_netns("em-1").command_line("nft", &["-f", "-"]);
        assert_eq!(line, ["ip", "netns", "exec", "em-1", "nft", "-f", "-"]);
        assert_eq!(SystemRunner::new().command_line("nft", &[]), ["nft"]);
    }

    #[test]
    fn failure_names_command_and_stderr() {
        let err = SystemRunner::new()
            .run("sh", &["-c", "echo boom >&2; exit 3"], None)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sh -c") && text.contains("boom"), "{text}");
    }

    #[test]
    fn stdin_reaches_the_program() {
        let out = SystemRunner::new().run("cat", &[], Some("hello")).unwrap();
        assert_eq!(out, "hello");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = SystemRunner::new()
            .run("/nonexistent/edgemesh-tool", &[], None)
            .unwrap_err();
        assert!(matches!(err, NetfilterError::Spawn { .. }), "{err}");
    }
}
