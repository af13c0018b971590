//! The process's own metrics under the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), and `edgemesh_build_info`,
//! read from `/proc/self` at scrape time. A file that cannot be read leaves its metrics out of
//! that scrape rather than failing it.

use std::fmt;
use std::fs;
use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::metrics::{Kind, Readings, Readout, register_readout};

/// Linux reports CPU times in `/proc` in USER_HZ, which is 100 on every architecture's ABI.
const USER_HZ: f64 = 100.0;

/// A role's registry, born with the process metrics and `edgemesh_build_info{role}`; each part
/// the role starts registers its own metrics into it.
pub fn role_registry(role: &'static str) -> Registry {
    let mut registry = Registry::default();
    register_readout(&mut registry, Arc::new(ProcessMetrics::new(role)));
    registry
}

/// The process metrics and the build's identity for one role.
#[derive(Debug)]
pub struct ProcessMetrics {
    role: &'static str,
}

impl ProcessMetrics {
    pub fn new(role: &'static str) -> Self {
        Self { role }
    }
}

impl Readout for ProcessMetrics {
    fn read(&self, out: &mut Readings<'_>) -> fmt::Result {
        let build = [(
            vec![("version", env!("CARGO_PKG_VERSION")), ("role", self.role)],
            1,
        )];
        out.labelled(
            Kind::Gauge,
            "edgemesh_build_info",
            "1, labelled with the version and the role of this process.",
            &build,
        )?;
        if let Some(stat) = read_stat() {
            out.one(
                Kind::Counter,
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds.",
                stat.cpu_seconds,
            )?;
            out.one(
                Kind::Gauge,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.virtual_bytes,
            )?;
            out.one(
                Kind::Gauge,
                "process_threads",
                "Threads of the process.",
                stat.threads,
            )?;
            if let Some(boot) = boot_time_seconds() {
                out.one(
                    Kind::Gauge,
                    "process_start_time_seconds",
                    "Start time of the process since the Unix epoch, in seconds.",
                    boot + stat.start_ticks as f64 / USER_HZ,
                )?;
            }
        }
        if let Some(rss) = self_status_bytes("VmRSS") {
            let help = "Resident memory size in bytes.";
            out.one(Kind::Gauge, "process_resident_memory_bytes", help, rss)?;
        }
        if let Ok(fds) = fs::read_dir("/proc/self/fd") {
            let help = "Open file descriptors.";
            out.one(Kind::Gauge, "process_open_fds", help, fds.count() as u64)?;
        }
        if let Some(max) = max_open_files() {
            let help = "The soft limit of open file descriptors.";
            out.one(Kind::Gauge, "process_max_fds", help, max)?;
        }
        Ok(())
    }
}

/// What `/proc/self/stat` tells.
#[derive(Debug, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    threads: u64,
    start_ticks: u64,
    virtual_bytes: u64,
}

fn read_stat() -> Option<Stat> {
    parse_stat(&fs::read_to_string("/proc/self/stat").ok()?)
}

/// Fields of `/proc/PID/stat` (proc(5)); the command name may hold spaces and parentheses, so
/// the fields are counted from the last `)`: the one after it is field 3, `state`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
    Some(Stat {
        cpu_seconds: (field(14)? + field(15)?) as f64 / USER_HZ,
        threads: field(20)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
    })
}

fn boot_time_seconds() -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("btime "))?;
    line["btime ".len()..]
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s as f64)
}

/// A memory field of `/proc/self/status` (`VmRSS`, `RssAnon`, `VmHWM`…) in bytes: the file
/// gives them in kB whatever the page size.
pub fn self_status_bytes(field: &str) -> Option<u64> {
    status_field_bytes("/proc/self/status", field)
}

/// The same field of another process (`pid`), for the benchmarks and tests that watch one.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    status_field_bytes(&format!("/proc/{pid}/status"), field)
}

fn status_field_bytes(path: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn max_open_files() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with a space and a parenthesis, as a thread may be named.
        let line = "4242 (edge mesh) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 7 \
                    0 123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            stat,
            Stat {
                cpu_seconds: 3.0,
                threads: 7,
                start_ticks: 123_456,
                virtual_bytes: 104_857_600,
            }
        );
    }

    #[test]
    fn own_process_is_readable() {
        let stat = read_stat().unwrap();
        assert!(stat.threads >= 1);
        assert!(self_status_bytes("VmRSS").unwrap() > 0);
        assert!(self_status_bytes("RssAnon").unwrap() > 0);
        assert_eq!(self_status_bytes("NoSuchField"), None);
        let pid = std::process::id();
        assert!(status_bytes(pid, "VmHWM").unwrap() > 0);
        assert_eq!(status_bytes(u32::MAX, "VmRSS"), None);
        assert!(max_open_files().unwrap() > 0);
        assert!(boot_time_seconds().unwrap() > 1e9);
        assert!(parse_stat("garbage").is_none());
    }
}
