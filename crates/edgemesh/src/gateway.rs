//! `edgemesh gateway`: EdgeMesh's ingress gateway (crate `edgemesh-gateway`) fed by the same
//! sources and Snapshot as the agent, reading the ingress kinds too.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use edgemesh_config::PreparedGateway;
use edgemesh_gateway::cli::GatewayArgs;
use edgemesh_kube::Inputs;
use edgemesh_kube::source::Sources;
use edgemesh_model::BuildOptions;
use edgemesh_proxy::{Dialer, DirectDialer};
use edgemesh_telemetry::Reply;
use edgemesh_tunnel::TunnelDialer;
use edgemesh_tunnel::settings::TunnelSettings;

use crate::mesh::Mesh;
use crate::process;

pub fn main(args: GatewayArgs) -> ExitCode {
    let loaded = args.prepare();
    let checked = process::settle_config("edgemesh gateway", loaded, args.check_config, |p| {
        p.warning_lines()
    });
    let prepared = match checked {
        Ok(prepared) => prepared,
        Err(exit) => return exit,
    };
    let log = args.log.clone();
    process::run_role(&log, || run(prepared, args))
}

async fn run(prepared: PreparedGateway, args: GatewayArgs) -> anyhow::Result<()> {
    for warning in prepared.warning_lines() {
        tracing::warn!(%warning, "config");
    }
    tracing::info!(node = %prepared.node.name, version = env!("CARGO_PKG_VERSION"), "starting edgemesh gateway");
    let sources = Sources::of_gateway(&prepared);
    let mut mesh = Mesh::new("gateway", sources, Inputs::Gateway, BuildOptions::default());
    let tunnel = match TunnelSettings::for_gateway(&prepared, args.state_dir.clone()) {
        Some(settings) => {
            let name = prepared.tunnel_node_name();
            let tunnel = mesh.start_tunnel(&settings, &name)?;
            tracing::info!(peer = %name, port = settings.listen_port, "gateway tunnel started: endpoints on other nodes are reached through it");
            Some(tunnel)
        }
        None => None,
    };
    let direct = DirectDialer::new(Arc::new(edgemesh_host::HostSockets::default()));
    let dialer: Arc<dyn Dialer> = match &tunnel {
        Some(t) => Arc::new(TunnelDialer::on_node(
            direct,
            t.handle(),
            &prepared.node.name,
        )),
        None => Arc::new(direct),
    };
    let settings = args.settings(&prepared);
    let (cell, updates) = (mesh.publisher.cell(), mesh.publisher.subscribe());
    let started = edgemesh_gateway::settings::start(
        settings,
        cell,
        updates,
        dialer,
        &mut mesh.registry,
        &mesh.liveness,
    );
    let shared = started.context("modules.edgeGateway.loadBalancer")?;
    // The agent's routes plus the gateway's own table.
    let admin = mesh
        .admin_routes(None, tunnel.as_ref())
        .route("/debug/routes", move || {
            Reply::json(edgemesh_gateway::debug::routes_json(&shared))
        });
    mesh.serve(admin, prepared.admin_addr(), tunnel).await
}
