//! `edgemesh agent`: wires sources → publisher → Snapshot → admin endpoint.

mod admin;
mod datapath;
mod dns;
mod liveness;
mod proxier;
mod reload;
mod settings;
mod tunnel;
mod udp_routing;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use edgemesh_kube::source::{api, manifests};
use edgemesh_kube::{Publisher, SourceEvent, client};
use edgemesh_model::BuildOptions;
use tokio::sync::mpsc;

use crate::cli::AgentArgs;
pub use settings::{ApiTarget, Settings};

/// Window in which source events are batched into one Snapshot rebuild.
const DEBOUNCE: Duration = Duration::from_millis(50);

pub fn main(args: AgentArgs) -> ExitCode {
    let settings = match Settings::load(&args) {
        Ok(settings) => settings,
        Err(errors) => {
            for error in errors.iter() {
                eprintln!("edgemesh: invalid configuration: {error}");
            }
            return ExitCode::from(crate::EXIT_INVALID_CONFIG);
        }
    };
    if args.check_config {
        for warning in &settings.warnings {
            println!("warning: {warning}");
        }
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    args.log.init();
    for warning in &settings.warnings {
        tracing::warn!("config: {warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let cleanup = args.cleanup;
    let result = runtime
        .context("cannot start the async runtime")
        .and_then(|rt| {
            if cleanup {
                rt.block_on(datapath::cleanup(&settings.bridge_device))
            } else {
                rt.block_on(run(settings, args))
            }
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, args: AgentArgs) -> anyhow::Result<()> {
    tracing::info!(node = %settings.node_name, version = env!("CARGO_PKG_VERSION"), "starting edgemesh agent");
    let options = BuildOptions {
        filter_mode: settings.filter_mode,
        version: 0,
        apiserver_via: settings.apiserver_via,
    };
    let publisher = Publisher::new(&settings.sources(), options, DEBOUNCE);
    let liveness = liveness::Liveness::default();
    let tunnel = match &settings.tunnel {
        Some(t) => Some(tunnel::start(t, &settings.node_name, publisher.cell())?),
        None => None,
    };
    let tunnel_handle = tunnel.as_ref().map(edgemesh_tunnel::Tunnel::handle);
    if let Some(handle) = tunnel_handle.clone() {
        liveness.check("tunnel driver", move || handle.driver_running());
    }
    if let (Some(t), Some(handle)) = (&settings.tunnel, &tunnel_handle) {
        tunnel::start_socks5(t, handle.clone()).await?;
        if let Some(path) = args.config.clone() {
            reload::follow_relays(args, path, handle.clone(), t.relays.clone());
        }
    }
    let datapath = match &settings.proxy {
        Some(proxy) => Some(
            datapath::start(
                proxy,
                &settings.node_name,
                tunnel_handle.clone(),
                publisher.cell(),
                publisher.subscribe(),
                publisher.readiness(),
                &liveness,
            )
            .await?,
        ),
        None => None,
    };
    let dns = match settings.dns.clone() {
        Some(dns) => Some(dns::start(dns, publisher.cell(), &liveness).await?),
        None => None,
    };
    let peers = tunnel_handle.map(tunnel::report_peers);
    let admin = admin::routes(
        publisher.cell(),
        publisher.readiness(),
        datapath,
        dns,
        peers,
        liveness.clone(),
    );
    let (events, rx) = mpsc::channel(1024);
    liveness.spawn("publisher", publisher.run(rx));
    start_sources(&settings, events).await?;
    let (addr, serving) = admin
        .bind(settings.admin_addr)
        .await
        .with_context(|| format!("cannot listen on admin address {}", settings.admin_addr))?;
    tracing::info!("admin endpoint listening on {addr}");
    tokio::spawn(serving);
    shutdown_signal().await;
    tracing::info!("shutting down");
    if let Some(tunnel) = tunnel {
        tunnel.stop();
    }
    Ok(())
}

async fn start_sources(
    settings: &Settings,
    events: mpsc::Sender<SourceEvent>,
) -> anyhow::Result<()> {
    if let Some(dir) = settings.manifests.clone() {
        let events = events.clone();
        tokio::spawn(async move {
            if let Err(e) = manifests::run(dir, events).await {
                tracing::error!("manifests source stopped: {e}");
            }
        });
    }
    if let Some(target) = &settings.api {
        let client = match target {
            ApiTarget::Kubeconfig(path) => client::from_kubeconfig(path).await?,
            ApiTarget::Url(url) => client::from_url(url)?,
            ApiTarget::MetaServer { url, tls } => client::for_meta_server(url, tls.as_ref())?,
            ApiTarget::InCluster => client::in_cluster()?,
        };
        let endpoints = match target {
            ApiTarget::MetaServer { .. } => api::EndpointsApi::CoreOnly,
            _ => api::EndpointsApi::Discover,
        };
        tracing::info!(api = %target, "watching the Kubernetes API");
        tokio::spawn(api::run(client, events, endpoints));
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
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
