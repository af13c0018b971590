//! The data path: the transparent proxy (TCP, and UDP through TPROXY) and the proxier that
//! points ClusterIP traffic at it.
//!
//! Order matters: the listeners are bound before the proxier exists, so a rule never points at a
//! port nobody listens on. They accept only once every source completed its first list (at most
//! [`ACCEPT_WAIT`]): during a takeover the predecessor's rules already send connections here,
//! and the kernel holds them in the backlog instead of the proxy refusing services it does not
//! know yet.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgemesh_host::HostSockets;
use edgemesh_lb::LoadBalancer;
use edgemesh_model::Snapshot;
use edgemesh_netfilter::settings::ProxierSettings;
use edgemesh_netfilter::{DEFAULT_BYPASS_MARK, DEFAULT_TPROXY_MARK, ProxierStats, UdpOptions};
use edgemesh_proxy::listeners::{listen_tcp, listen_udp};
use edgemesh_proxy::settings::ProxySettings;
use edgemesh_proxy::{Dialer, DirectDialer, Proxy, ProxyConfig};
use edgemesh_telemetry::Readout;
use edgemesh_tunnel::{TunnelDialer, TunnelHandle};

use crate::mesh::Mesh;

/// How long the proxy holds connections while the sources have not completed their first list;
/// then it serves what it knows.
const ACCEPT_WAIT: Duration = Duration::from_secs(5);

/// Starts the proxy of `settings` and the proxier of `rules` on the Snapshot of `mesh`, their
/// metrics in its registry; endpoints on other nodes are dialed through `tunnel` when it runs.
/// Returns the proxier's counters, which `/readyz` reads.
pub async fn start(
    settings: &ProxySettings,
    rules: &ProxierSettings,
    node_name: &str,
    tunnel: Option<TunnelHandle>,
    mesh: &mut Mesh,
) -> anyhow::Result<Arc<ProxierStats>> {
    let balancer = Arc::new(
        LoadBalancer::new(settings.consistent_hash)
            .context("modules.edgeProxy.loadBalancer.consistentHash")?,
    );
    // Every socket of the data path comes from here: dialed ones carry the bypass mark (checked
    // now, so a missing CAP_NET_ADMIN is a start-up error).
    let sockets = Arc::new(HostSockets::marked(DEFAULT_BYPASS_MARK.value)?);
    let direct = DirectDialer::new(sockets.clone());
    // Without the tunnel, endpoints on other nodes are dialed directly (a flat network, or they
    // fail and the proxy retries another endpoint).
    let dialer: Arc<dyn Dialer> = match tunnel {
        Some(handle) => Arc::new(TunnelDialer::new(direct, handle)),
        None => Arc::new(direct),
    };
    let config = settings.apply(ProxyConfig {
        sockets: sockets.clone(),
        local_node: Some(Arc::from(node_name)),
        ..ProxyConfig::default()
    });
    let proxy = Proxy::new(config, mesh.publisher.cell(), balancer.clone(), dialer);

    let (updates, readiness) = (mesh.publisher.subscribe(), mesh.publisher.readiness());
    let synced = || Arc::clone(&readiness).first_sync(updates.clone(), ACCEPT_WAIT);
    let (port, liveness) = (settings.port, &mesh.liveness);
    let tcp = listen_tcp(&proxy, &*sockets, port, synced(), liveness)?;
    let mark = DEFAULT_TPROXY_MARK;
    let udp = listen_udp(&proxy, &*sockets, port, mark, synced(), liveness).await;
    let udp = udp.then_some(UdpOptions { port, mark });
    let proxier = edgemesh_netfilter::start::proxier(rules, tcp, udp, node_name).await?;
    let stats = proxier.stats();
    let complete = move |s: &Snapshot| readiness.includes(s);
    let prune = move |s: &Snapshot| balancer.prune(s);
    liveness.spawn("proxier", proxier.run(updates, complete, prune));
    proxy.metrics().register(&mut mesh.registry);
    stats.register(&mut mesh.registry);
    Ok(stats)
}

/// `edgemesh agent --cleanup`: everything the agent installed (`edgemesh_netfilter::start::
/// cleanup`); a partial cleanup is an error naming each failed step.
pub async fn cleanup(bridge: &(String, std::net::IpAddr)) -> anyhow::Result<()> {
    let failures = edgemesh_netfilter::start::cleanup(bridge).await?;
    anyhow::ensure!(
        failures.is_empty(),
        "cleanup incomplete: {}",
        failures.join("; ")
    );
    Ok(())
}
