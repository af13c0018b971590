//! What the agent and the gateway share: their sources feeding one publisher (Snapshot), one
//! metrics registry, what `/healthz` watches, the tunnel, the admin routes, and the run until a
//! signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgemesh_kube::source::Sources;
use edgemesh_kube::{Inputs, Publisher};
use edgemesh_model::BuildOptions;
use edgemesh_netfilter::ProxierStats;
use edgemesh_telemetry::{AdminServer, Liveness, Readout, Registry, Reply};
use edgemesh_tunnel::settings::TunnelSettings;
use edgemesh_tunnel::{PeersView, Tunnel};
use tokio::sync::mpsc;

use crate::process;

/// Window in which source events are batched into one Snapshot rebuild.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// A role's publisher, registry and liveness, before its sources start.
#[derive(Debug)]
pub struct Mesh {
    pub publisher: Publisher,
    pub registry: Registry,
    pub liveness: Liveness,
    sources: Sources,
    inputs: Inputs,
}

impl Mesh {
    /// The publisher of the Snapshot `sources` feed (reading the kinds `inputs` names), and the
    /// metrics registry of `role` (born with the process metrics and `edgemesh_build_info`).
    pub fn new(
        role: &'static str,
        sources: Sources,
        inputs: Inputs,
        options: BuildOptions,
    ) -> Self {
        let publisher = Publisher::new(&sources.ids(), inputs, options, DEBOUNCE);
        let mut registry = edgemesh_telemetry::role_registry(role);
        publisher.register(&mut registry);
        Self {
            publisher,
            registry,
            liveness: Liveness::default(),
            sources,
            inputs,
        }
    }

    /// The tunnel as `name`, watched by `/healthz`.
    pub fn start_tunnel(&self, settings: &TunnelSettings, name: &str) -> anyhow::Result<Tunnel> {
        let tunnel = edgemesh_tunnel::settings::start(settings, name, self.publisher.cell())?;
        let watched = tunnel.handle();
        (self.liveness).check("tunnel driver", move || watched.driver_running());
        Ok(tunnel)
    }

    /// `/livez` and `/healthz`, `/readyz` (with the rules of `proxier` when they are installed),
    /// `/debug/snapshot` and `/debug/peers` (the tunnel's, whose totals go to `/metrics`).
    pub fn admin_routes(
        &mut self,
        proxier: Option<Arc<ProxierStats>>,
        tunnel: Option<&Tunnel>,
    ) -> AdminServer {
        let peers = tunnel.map(|tunnel| {
            let view = PeersView::start(tunnel.handle());
            view.register(&mut self.registry);
            view
        });
        let (cell, readiness) = (self.publisher.cell(), self.publisher.readiness());
        let liveness = self.liveness.clone();
        AdminServer::new()
            .route("/debug/peers", move || match &peers {
                Some(view) => Reply::json(view.body()),
                None => Reply::text(404, "the tunnel is off (modules.edgeTunnel.enable)\n"),
            })
            .liveness(liveness)
            .route("/readyz", move || {
                match readiness.not_ready(proxier.as_ref().map(|p| p.synced_version())) {
                    None => Reply::text(200, "ready\n"),
                    Some(problem) => Reply::text(503, format!("not ready: {problem}\n")),
                }
            })
            .route("/debug/snapshot", move || {
                match serde_json::to_vec_pretty(&*cell.load()) {
                    Ok(body) => Reply::json(body),
                    Err(e) => Reply::text(500, format!("cannot serialize the snapshot: {e}\n")),
                }
            })
    }

    /// Starts the publisher and the sources, serves `admin` (and `/metrics`) on `admin_addr`,
    /// and runs until SIGINT or SIGTERM; then stops the tunnel.
    pub async fn serve(
        self,
        admin: AdminServer,
        admin_addr: SocketAddr,
        tunnel: Option<Tunnel>,
    ) -> anyhow::Result<()> {
        let admin = admin.metrics(Arc::new(self.registry));
        let (events, rx) = mpsc::channel(1024);
        (self.liveness).spawn("publisher", self.publisher.run(rx));
        self.sources.start(events, self.inputs).await?;
        let (addr, serving) = admin
            .bind(admin_addr)
            .await
            .with_context(|| format!("cannot listen on admin address {admin_addr}"))?;
        // Tests and scripts read the address from this line's `listen.addr` (testkit's
        // `parse_admin_addr`, scripts/bench-gateway.sh and bench-datapath.sh): keep both names.
        tracing::info!(listen.addr = %addr, "admin endpoint listening");
        tokio::spawn(serving);
        process::shutdown_signal().await;
        tracing::info!("shutting down");
        if let Some(tunnel) = tunnel {
            tunnel.stop();
        }
        Ok(())
    }
}
