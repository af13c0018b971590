//! Command lines for `edgemesh hub` in tests and benchmarks.
//!
//! [`HubCommand::new`] starts from a hub that touches nothing of the host: no device, no
//! ConfigMap, no fixed ports (the plain-HTTP front and the admin endpoint on `127.0.0.1:0`, the
//! HTTPS front off). A test sets what it exercises with [`HubCommand::flag`].

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::netns::Netns;
use crate::process::Process;

/// Logged by the hub once its plain-HTTP front listens; the address is the line's `listen.addr`.
pub const PLAIN_LISTENING: &str = "hub listening for plain HTTP";
/// Logged by the hub once its HTTPS front listens; the address is the line's `listen.addr`.
pub const SECURE_LISTENING: &str = "hub listening for HTTPS";

/// The arguments of one `edgemesh hub` command, each flag at most once.
#[derive(Debug, Clone)]
pub struct HubCommand {
    flags: Vec<(String, String)>,
}

impl HubCommand {
    /// A hub in front of `upstream` caching in `cache`, with nothing of the host touched.
    pub fn new(upstream: &str, cache: &Path) -> Self {
        let cache = cache.to_string_lossy();
        let defaults = [
            ("--server-addr", upstream),
            ("--cache-dir", &cache),
            ("--secure-addr", ""),
            ("--insecure-addr", "127.0.0.1:0"),
            ("--hub-device", ""),
            ("--config-map", ""),
            ("--admin-addr", "127.0.0.1:0"),
        ];
        Self {
            flags: defaults
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        }
    }

    /// Sets `name` to `value`, replacing an earlier value (the hub refuses a flag given twice).
    pub fn flag(mut self, name: &str, value: &str) -> Self {
        match self.flags.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.flags.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// `hub` followed by every flag and its value.
    pub fn args(&self) -> Vec<&str> {
        let mut args = vec!["hub"];
        for (name, value) in &self.flags {
            args.extend([name.as_str(), value.as_str()]);
        }
        args
    }

    /// Starts `binary hub …` (in `netns` when given) and waits until its plain-HTTP front
    /// listens; returns the process and that front's address.
    pub fn start_plain(
        &self,
        binary: impl AsRef<Path>,
        netns: Option<&Netns>,
        timeout: Duration,
    ) -> io::Result<(Process, SocketAddr)> {
        let mut hub = Process::start(binary, &self.args(), netns)?;
        let line = hub.wait_for_log(PLAIN_LISTENING, timeout)?;
        let addr = plain_address(&line).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no address in {line:?}"),
            )
        })?;
        Ok((hub, addr))
    }
}

/// The address in the hub's [`PLAIN_LISTENING`] log line.
pub fn plain_address(line: &str) -> Option<SocketAddr> {
    line.contains(PLAIN_LISTENING).then_some(())?;
    crate::process::listen_addr(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_set_twice_keeps_one_value() {
        let cmd = HubCommand::new("http://127.0.0.1:1", Path::new("/tmp/c"))
            .flag("--insecure-addr", "127.0.0.1:10261")
            .flag("--cache-agents", "kubectl");
        let args = cmd.args();
        let count = args.iter().filter(|a| **a == "--insecure-addr").count();
        assert_eq!(count, 1);
        assert!(
            args.windows(2)
                .any(|w| w == ["--insecure-addr", "127.0.0.1:10261"])
        );
        assert!(args.ends_with(&["--cache-agents", "kubectl"]));
    }

    #[test]
    fn the_plain_front_address_is_read_from_the_log_line() {
        let line = "2026-12-04T10:00:00Z  INFO edgemesh_hub::role: hub listening for plain HTTP listen.addr=127.0.0.1:40123";
        assert_eq!(
            plain_address(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(
            plain_address("hub listening for plain HTTP listen.addr=nonsense"),
            None
        );
        assert_eq!(
            plain_address("hub listening for HTTPS listen.addr=127.0.0.1:1"),
            None
        );
    }
}
