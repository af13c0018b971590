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
use edgemesh_telemetry::{AdminServer, Liveness, Readout, ReadyChecks, Registry, Reply};
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
    /// What `/readyz` asks: the sources from the start; the rules, DNS and the tunnel as their
    /// owners add them.
    pub ready: ReadyChecks,
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
        let ready = ReadyChecks::default();
        let readiness = publisher.readiness();
        ready.check("sources", move || readiness.sources_verdict());
        Self {
            publisher,
            registry,
            liveness: Liveness::default(),
            ready,
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

    /// `/livez` and `/healthz`, `/readyz` (adding the rules of `proxier` when they are installed,
    /// and the tunnel's peers), `/debug/snapshot` and `/debug/peers` (the tunnel's, whose
    /// totals go to `/metrics`).
    pub fn admin_routes(
        &mut self,
        proxier: Option<Arc<ProxierStats>>,
        tunnel: Option<&Tunnel>,
    ) -> AdminServer {
        if let Some(stats) = proxier {
            let readiness = self.publisher.readiness();
            (self.ready).check("rules", move || {
                readiness.rules_verdict(stats.synced_version())
            });
        }
        let peers = tunnel.map(|tunnel| {
            let view = PeersView::start(tunnel.handle());
            view.register(&mut self.registry);
            let (summary, handle) = (Arc::clone(&view), tunnel.handle());
            (self.ready).check("tunnel", move || match handle.driver_running() {
                true => Ok(summary.summary()),
                false => Err("the tunnel driver has stopped (see /healthz)".to_owned()),
            });
            view
        });
        let cell = self.publisher.cell();
        AdminServer::new()
            .route("/debug/peers", move || match &peers {
                Some(view) => Reply::json(view.body()),
                None => Reply::text(404, "the tunnel is off (modules.edgeTunnel.enable)\n"),
            })
            .liveness(self.liveness.clone())
            .readiness(self.ready.clone())
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
