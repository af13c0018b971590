//! `edgemesh agent`: wires sources → publisher → Snapshot → admin endpoint.

pub(crate) mod admin;
mod datapath;
mod reload;
mod settings;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgemesh_kube::{Inputs, Publisher};
use edgemesh_model::BuildOptions;
use edgemesh_telemetry::{Liveness, Readout};
use edgemesh_tunnel::settings::TunnelSettings;
use tokio::sync::mpsc;

use crate::cli::AgentArgs;
use crate::process;
pub use settings::Settings;

/// Window in which source events are batched into one Snapshot rebuild.
const DEBOUNCE: Duration = Duration::from_millis(50);

pub fn main(args: AgentArgs) -> ExitCode {
    let loaded = Settings::load(&args);
    let settings = match process::settle_config("edgemesh", loaded, args.check_config, |s| {
        s.warnings.clone()
    }) {
        Ok(settings) => settings,
        Err(exit) => return exit,
    };
    let log = args.log.clone();
    process::run_role(&log, || async move {
        for warning in &settings.warnings {
            tracing::warn!(%warning, "config");
        }
        match args.cleanup {
            true => datapath::cleanup(&settings.bridge_device).await,
            false => run(settings, args).await,
        }
    })
}

async fn run(settings: Settings, args: AgentArgs) -> anyhow::Result<()> {
    tracing::info!(node = %settings.node_name, version = env!("CARGO_PKG_VERSION"), "starting edgemesh agent");
    let options = BuildOptions {
        filter_mode: settings.filter_mode,
        version: 0,
        apiserver_via: settings.apiserver_via,
    };
    let publisher = Publisher::new(&settings.sources(), Inputs::Agent, options, DEBOUNCE);
    let mut registry = edgemesh_telemetry::role_registry("agent");
    publisher.register(&mut registry);
    let liveness = Liveness::default();
    let tunnel = match &settings.tunnel {
        Some(t) => Some(start_tunnel(t, &settings.node_name, &publisher, args, &liveness).await?),
        None => None,
    };
    let tunnel_handle = tunnel.as_ref().map(edgemesh_tunnel::Tunnel::handle);
    let proxier = match &settings.proxy {
        Some((proxy, rules)) => {
            let sources = datapath::Sources {
                cell: publisher.cell(),
                updates: publisher.subscribe(),
                readiness: publisher.readiness(),
            };
            let node = &settings.node_name;
            let started = datapath::start(
                proxy,
                rules,
                node,
                tunnel_handle.clone(),
                sources,
                &liveness,
            );
            Some(started.await?.register(&mut registry))
        }
        None => None,
    };
    if let Some(dns) = settings.dns.clone() {
        edgemesh_dns::settings::start(dns, publisher.cell(), &liveness)
            .await?
            .register(&mut registry);
    }
    let peers = tunnel_handle.map(|handle| {
        let view = edgemesh_tunnel::PeersView::start(handle);
        view.register(&mut registry);
        view
    });
    let admin = admin::routes(
        publisher.cell(),
        publisher.readiness(),
        proxier,
        peers,
        liveness.clone(),
    )
    .metrics(Arc::new(registry));
    let (events, rx) = mpsc::channel(1024);
    liveness.spawn("publisher", publisher.run(rx));
    let manifests = settings.manifests.clone();
    crate::sources::start(settings.api.as_ref(), manifests, events, Inputs::Agent).await?;
    let (addr, serving) = admin
        .bind(settings.admin_addr)
        .await
        .with_context(|| format!("cannot listen on admin address {}", settings.admin_addr))?;
    // Tests and scripts read the address from this message: keep it in the text.
    tracing::info!("admin endpoint listening on {addr}");
    tokio::spawn(serving);
    process::shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(tunnel) = tunnel {
        tunnel.stop();
    }
    Ok(())
}

/// The tunnel, watched by `/healthz`, with SOCKS5 and the relay list followed in the config file.
async fn start_tunnel(
    settings: &TunnelSettings,
    node_name: &str,
    publisher: &Publisher,
    args: AgentArgs,
    liveness: &Liveness,
) -> anyhow::Result<edgemesh_tunnel::Tunnel> {
    let tunnel = edgemesh_tunnel::settings::start(settings, node_name, publisher.cell())?;
    let handle = tunnel.handle();
    let watched = handle.clone();
    liveness.check("tunnel driver", move || watched.driver_running());
    edgemesh_tunnel::settings::start_socks5(settings, handle.clone()).await?;
    if let Some(path) = args.sources.config.clone() {
        reload::follow_relays(args, path, handle, settings.relays.clone());
    }
    Ok(tunnel)
}
