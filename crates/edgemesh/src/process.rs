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

/// Installs the logger `log` describes, runs `role` on [`edgemesh_runtime::runtime`] (two
/// workers, each handing back what its last burst of work freed when it goes idle) and turns its
/// result into the exit status (a failure is logged with every cause).
pub fn run_role<F, E>(log: &LogArgs, role: impl FnOnce() -> F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Into<anyhow::Error>,
{
    log.init();
    let result = edgemesh_runtime::runtime()
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
