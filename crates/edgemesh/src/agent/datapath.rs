//! The data path: the transparent proxy (TCP, and UDP through TPROXY) and the proxier that
//! points ClusterIP traffic at it.
//!
//! Order matters: the listeners are bound before the first rule is installed, so a rule never
//! points at a port nobody listens on. They accept only once every source completed its first
//! list (at most [`ACCEPT_WAIT`]): during a takeover the predecessor's rules already send
//! connections here, and the kernel holds them in the backlog instead of the proxy refusing
//! services it does not know yet.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgemesh_host::HostSockets;
use edgemesh_kube::Readiness;
use edgemesh_lb::LoadBalancer;
use edgemesh_model::{Snapshot, SnapshotCell};
use edgemesh_netfilter::settings::ProxierSettings;
use edgemesh_netfilter::{
    CommandRunner, DEFAULT_BYPASS_MARK, Proxier, ProxierStats, RuleOptions, SystemRunner,
    UdpOptions, start,
};
use edgemesh_proxy::listeners;
use edgemesh_proxy::settings::ProxySettings;
use edgemesh_proxy::{Dialer, DirectDialer, Metrics, Proxy, ProxyConfig};
use edgemesh_telemetry::{Liveness, Readout, Registry};
use edgemesh_tunnel::{TunnelDialer, TunnelHandle};
use tokio::sync::watch;

/// How long the proxy holds connections while the sources have not completed their first list;
/// then it serves what it knows.
const ACCEPT_WAIT: Duration = Duration::from_secs(5);

/// What the data path follows: the publisher's Snapshot and whether it is complete.
#[derive(Debug)]
pub struct Sources {
    pub cell: Arc<SnapshotCell>,
    pub updates: watch::Receiver<Arc<Snapshot>>,
    pub readiness: Arc<Readiness>,
}

/// The running data path's counters.
#[derive(Debug, Clone)]
pub struct DataPath {
    proxy_metrics: Arc<Metrics>,
    proxier: Arc<ProxierStats>,
}

impl DataPath {
    /// Registers the proxy's and the proxier's metrics; `/readyz` keeps the proxier's stats.
    pub fn register(self, registry: &mut Registry) -> Arc<ProxierStats> {
        self.proxy_metrics.register(registry);
        self.proxier.register(registry);
        self.proxier
    }
}

pub async fn start(
    settings: &ProxySettings,
    rules: &ProxierSettings,
    node_name: &str,
    tunnel: Option<TunnelHandle>,
    sources: Sources,
    liveness: &Liveness,
) -> anyhow::Result<DataPath> {
    let Sources {
        cell,
        updates,
        readiness,
    } = sources;
    let balancer = Arc::new(
        LoadBalancer::new(settings.consistent_hash)
            .context("modules.edgeProxy.loadBalancer.consistentHash")?,
    );
    // Every socket of the data path comes from here: dialed ones carry the bypass mark (checked
    // now, so a missing CAP_NET_ADMIN is a start-up error).
    let sockets = Arc::new(HostSockets::marked(DEFAULT_BYPASS_MARK.value)?);
    let direct = DirectDialer::new(sockets.clone());
    // Endpoints on other nodes go through the tunnel when it runs; without it they are dialed
    // directly (a flat network, or they fail and the proxy retries another endpoint).
    let dialer: Arc<dyn Dialer> = match tunnel {
        Some(handle) => Arc::new(TunnelDialer::new(direct, handle)),
        None => Arc::new(direct),
    };
    let config = ProxyConfig {
        sockets: sockets.clone(),
        local_node: Some(Arc::from(node_name)),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::new(config, cell, balancer.clone(), dialer);

    let synced = Arc::clone(&readiness).first_sync(updates.clone(), ACCEPT_WAIT);
    let tcp_addr = listeners::listen_tcp(&proxy, &*sockets, settings.port, synced, liveness)?;

    start::tcp_timestamps(rules.monotonic_tcp_timestamps);
    let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner::new());
    let backend = start::pick_backend(rules.backend, runner).await?;
    let synced = Arc::clone(&readiness).first_sync(updates.clone(), ACCEPT_WAIT);
    let mark = edgemesh_netfilter::DEFAULT_TPROXY_MARK;
    let udp = listeners::listen_udp(&proxy, &*sockets, settings.port, mark, synced, liveness)
        .await
        .then_some(UdpOptions {
            port: settings.port,
            mark,
        });
    tracing::info!(backend = %backend.kind(), tcp = %tcp_addr, udp = udp.is_some(), "transparent proxy listening; programming ClusterIP interception");
    let options = RuleOptions {
        tcp_port: settings.port,
        udp,
        fast_path: start::fast_path(rules.kernel_fast_path, backend.kind(), node_name),
        ..RuleOptions::default()
    };
    let proxier = Proxier::new(backend, options);
    let stats = proxier.stats();
    let complete = move |s: &Snapshot| readiness.includes(s);
    let prune = move |s: &Snapshot| balancer.prune(s);
    liveness.spawn("proxier", proxier.run(updates, complete, prune));
    Ok(DataPath {
        proxy_metrics: Arc::clone(proxy.metrics()),
        proxier: stats,
    })
}

/// `edgemesh agent --cleanup`: removes the rules of both backends, the UDP policy route and the
/// bridge device (`bridge`: its name and the address that shows it is ours). Each step is
/// idempotent; every failure is reported, and a partial cleanup is an error.
pub async fn cleanup(bridge: &(String, std::net::IpAddr)) -> anyhow::Result<()> {
    let runner: Arc<dyn CommandRunner> = Arc::new(SystemRunner::new());
    let mut failures = start::cleanup_rules(runner).await?;
    match edgemesh_host::remove_tproxy_route(edgemesh_netfilter::DEFAULT_TPROXY_MARK).await {
        Ok(()) => tracing::info!("removed the UDP TPROXY policy route"),
        Err(e) => failures.push(format!("UDP policy route: {e:#}")),
    }
    let (device, address) = bridge;
    match edgemesh_host::remove_bridge_device(device, *address).await {
        Ok(true) => tracing::info!(%device, "removed the bridge device"),
        Ok(false) => {}
        Err(e) => failures.push(format!("bridge device {device}: {e}")),
    }
    anyhow::ensure!(
        failures.is_empty(),
        "cleanup incomplete: {}",
        failures.join("; ")
    );
    Ok(())
}
