//! `edgemesh agent`: wires sources → publisher → Snapshot → tunnel, data path, DNS and the admin
//! endpoint.

mod datapath;
mod reload;
mod settings;

use std::process::ExitCode;

use edgemesh_kube::Inputs;
use edgemesh_model::BuildOptions;
use edgemesh_telemetry::Readout;
use edgemesh_tunnel::settings::TunnelSettings;

use crate::cli::AgentArgs;
use crate::mesh::Mesh;
use crate::process;
pub use settings::Settings;

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
    let mut mesh = Mesh::new("agent", settings.sources.clone(), Inputs::Agent, options);
    let tunnel = match &settings.tunnel {
        Some(t) => Some(start_tunnel(&mesh, t, &settings.node_name, args).await?),
        None => None,
    };
    let proxier = match &settings.proxy {
        Some((proxy, rules)) => {
            let tunnel = tunnel.as_ref().map(edgemesh_tunnel::Tunnel::handle);
            let node = &settings.node_name;
            Some(datapath::start(proxy, rules, node, tunnel, &mut mesh).await?)
        }
        None => None,
    };
    if let Some(dns) = settings.dns.clone() {
        let listen: Vec<String> = dns.server.listen.iter().map(|a| a.to_string()).collect();
        edgemesh_dns::settings::start(dns, mesh.publisher.cell(), &mesh.liveness)
            .await?
            .register(&mut mesh.registry);
        // Bound by now (start fails otherwise); a server that stops later is /healthz's.
        let serving = format!("answering on {}", listen.join(", "));
        mesh.ready.check("dns", move || Ok(serving.clone()));
    }
    let admin = mesh.admin_routes(proxier, tunnel.as_ref());
    mesh.serve(admin, settings.admin_addr, tunnel).await
}

/// The tunnel, with SOCKS5 and the relay list followed in the config file.
async fn start_tunnel(
    mesh: &Mesh,
    settings: &TunnelSettings,
    node_name: &str,
    args: AgentArgs,
) -> anyhow::Result<edgemesh_tunnel::Tunnel> {
    let tunnel = mesh.start_tunnel(settings, node_name)?;
    let handle = tunnel.handle();
    edgemesh_tunnel::settings::start_socks5(settings, handle.clone()).await?;
    if let Some(path) = args.sources.config.clone() {
        reload::follow_relays(args, path, handle, settings.relays.clone());
    }
    Ok(tunnel)
}
