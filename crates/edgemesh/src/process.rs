//! The process set-up every long-running role shares: logs, the async runtime, the signals that
//! stop it and the exit status.

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use edgemesh_telemetry::LogArgs;

/// Exit status for a command line or configuration that cannot run, before anything on the
/// host was touched.
pub const EXIT_INVALID_CONFIG: u8 = 2;

/// What every configured role does with its loaded configuration before it starts: each error
/// on stderr (prefixed with `role`) and [`EXIT_INVALID_CONFIG`]; with `--check-config`
/// (`check_only`) the warnings and "configuration is valid" on stdout and success. `Ok`: start.
pub fn settle_config<T, E>(
    role: &str,
    loaded: Result<T, E>,
    check_only: bool,
    warnings: impl FnOnce(&T) -> Vec<String>,
) -> Result<T, ExitCode>
where
    E: IntoIterator,
    E::Item: std::fmt::Display,
{
    let settled = match loaded {
        Ok(settled) => settled,
        Err(errors) => {
            for error in errors {
                eprintln!("{role}: invalid configuration: {error}");
            }
            return Err(ExitCode::from(EXIT_INVALID_CONFIG));
        }
    };
    if check_only {
        for warning in warnings(&settled) {
            println!("warning: {warning}");
        }
        println!("configuration is valid");
        return Err(ExitCode::SUCCESS);
    }
    Ok(settled)
}

/// Installs the logger `log` describes, runs `role` on a two-worker runtime and turns its result
/// into the exit status (a failure is logged with every cause). A worker going idle hands back
/// the memory its last burst of work freed ([`crate::allocator`]).
pub fn run_role<F, E>(log: &LogArgs, role: impl FnOnce() -> F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Into<anyhow::Error>,
{
    log.init();
    let result = runtime()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(role()).map_err(Into::into));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format_args!("{e:#}"), "stopped");
            ExitCode::FAILURE
        }
    }
}

/// The runtime every role runs on: two workers (an edge node's share of the CPU), each handing
/// back free memory when it goes idle.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_park(crate::allocator::release_free_memory_when_due)
        .enable_all()
        .build()
}

/// Resolves on SIGINT or SIGTERM (only SIGINT when SIGTERM cannot be watched).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// The process's anonymous resident memory (heap), in MiB.
    fn rss_anon_mib() -> u64 {
        edgemesh_telemetry::self_status_bytes("RssAnon").expect("RssAnon in /proc/self/status")
            >> 20
    }

    /// 256 MiB in blocks of the sizes a burst of objects has, touched, then all freed.
    fn burst() {
        let blocks: Vec<Vec<u8>> = (0..(256 << 20) / 2048)
            .map(|i| vec![1u8; 1024 + (i % 2048)])
            .collect();
        assert!(blocks.iter().all(|b| b[0] == 1));
    }

    #[test]
    fn a_worker_gone_idle_hands_back_what_its_burst_freed() {
        const BURST_MIB: u64 = 256;
        let runtime = runtime().expect("runtime");
        // Past the workers' first release at start-up, so the park after the burst is due.
        std::thread::sleep(crate::allocator::RELEASE_INTERVAL + Duration::from_millis(200));
        let before = rss_anon_mib();
        runtime.block_on(async { tokio::spawn(async { burst() }).await.expect("burst task") });
        // Without the release the freed pages stay resident for good: the worker that freed
        // them allocates nothing more, and mimalloc purges only from a later allocation.
        let started = Instant::now();
        let mut now = rss_anon_mib();
        while now > before + BURST_MIB / 4 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            now = rss_anon_mib();
        }
        assert!(
            now <= before + BURST_MIB / 4,
            "RssAnon {now} MiB, {before} MiB before a {BURST_MIB} MiB burst that was freed"
        );
    }
}
