//! `edgemesh hub`: the edge hub (crate `edgemesh-hub`, whose `cli` module holds its flags, the
//! link-local device and the admin routes) with the shared log flags, on the runtime.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use edgemesh_hub::cli::{HubFlags, admin_routes, config_of, ensure_device};
use edgemesh_hub::{Hub, HubConfig};
use edgemesh_telemetry::Registry;

use crate::logs::LogArgs;
use crate::process;

/// Flags of `edgemesh hub` (boxed: they are many, and the CLI enum stays small).
#[derive(Debug, Args)]
pub struct HubArgs {
    #[command(flatten)]
    pub flags: Box<HubFlags>,

    #[command(flatten)]
    pub log: LogArgs,
}

pub fn main(args: HubArgs) -> ExitCode {
    let HubArgs { flags: args, log } = args;
    let config = match config_of(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("edgemesh hub: {e}");
            return ExitCode::from(process::EXIT_INVALID_CONFIG);
        }
    };
    process::run_role(&log, || run(config, &args))
}

async fn run(config: HubConfig, args: &HubFlags) -> anyhow::Result<()> {
    if let Some(addr) = config.secure_addr {
        ensure_device(&args.hub_device, addr.ip()).await?;
    }
    let mut registry = Registry::default();
    let hub = Hub::start(config, &mut registry).await?;
    let status = hub.status_handle();
    let admin = admin_routes(status.clone()).metrics(Arc::new(registry));
    let (admin_addr, admin_serving) = admin
        .bind(args.admin_addr)
        .await
        .with_context(|| format!("cannot listen on --admin-addr {}", args.admin_addr))?;
    tokio::spawn(admin_serving);
    tracing::info!("admin endpoint listening on {admin_addr}");
    if let Some(addr) = hub.secure_addr {
        tracing::info!("hub listening on https://{addr}");
    }
    if let Some(addr) = hub.insecure_addr {
        tracing::info!("hub listening on http://{addr}");
    }
    let flusher = status.clone();
    let result = tokio::select! {
        result = hub.serve() => result.context("edge hub stopped"),
        () = process::shutdown_signal() => Ok(()),
    };
    // Queued cache writes are atomic either way; finishing them keeps the lists complete.
    let _ = tokio::task::spawn_blocking(move || flusher.flush_cache()).await;
    tracing::info!("edge hub stopped");
    result
}
