//! What `edgemesh hub` runs once its flags are read: the hub on the link-local device a
//! link-local `--secure-addr` needs, with its admin routes, until shutdown; and `edgemesh hub
//! bootstrap`. The `edgemesh` binary runs both on its runtime.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use edgemesh_telemetry::{AdminServer, Liveness, Reply};

use crate::bootstrap::{BootstrapError, Outcome, renewal_due, wait_until};
use crate::cli::{BootstrapPlan, HubFlags};
use crate::{Hub, HubConfig, HubError, StatusHandle};

/// Why `edgemesh hub` or `edgemesh hub bootstrap` stopped; each names the flag or step.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Renewal starts from a pair on disk: the first one comes from bootstrap.
    #[error(
        "with --rotate-server-certificate the first pair comes from `edgemesh hub bootstrap` (run it before the hub, e.g. as an initContainer)"
    )]
    NoFirstPair(#[source] HubError),
    #[error("cannot listen on --admin-addr {addr}")]
    Admin {
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
    #[error("edge hub stopped")]
    Stopped(#[source] HubError),
    #[error("hub bootstrap failed")]
    Bootstrap(#[source] BootstrapError),
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// Runs the hub `config` describes (with the device and admin address of `flags`) until it
/// fails or `shutdown` resolves, then finishes the queued cache writes.
pub async fn serve(
    config: HubConfig,
    flags: &HubFlags,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RoleError> {
    if let Some(addr) = config.secure_addr {
        ensure_device(&flags.hub_device, addr.ip()).await?;
    }
    let mut registry = edgemesh_telemetry::role_registry("hub");
    let rotating = config.renewal.is_some();
    let hub = Hub::start(config, &mut registry)
        .await
        .map_err(|e| match rotating {
            true => RoleError::NoFirstPair(e),
            false => RoleError::Hub(e),
        })?;
    let status = hub.status_handle();
    let admin = admin_routes(status.clone()).metrics(Arc::new(registry));
    let addr = flags.admin_addr;
    let (admin_addr, admin_serving) = admin
        .bind(addr)
        .await
        .map_err(|error| RoleError::Admin { addr, error })?;
    tokio::spawn(admin_serving);
    // Tests read the addresses from these lines (edgemesh-testkit's `process` and `hub`).
    tracing::info!(listen.addr = %admin_addr, "admin endpoint listening");
    if let Some(addr) = hub.secure_addr {
        tracing::info!(listen.addr = %addr, "hub listening for HTTPS");
    }
    if let Some(addr) = hub.insecure_addr {
        tracing::info!(listen.addr = %addr, "hub listening for plain HTTP");
    }
    let flusher = status.clone();
    let result = tokio::select! {
        result = hub.serve() => result.map_err(RoleError::Stopped),
        () = shutdown => Ok(()),
    };
    // Queued cache writes are atomic either way; finishing them keeps the lists complete.
    let _ = tokio::task::spawn_blocking(move || flusher.flush_cache()).await;
    tracing::info!("edge hub stopped");
    result
}

/// `edgemesh hub bootstrap`: gets the serving pair `plan` describes, or keeps the one on disk.
pub async fn bootstrap(plan: BootstrapPlan) -> Result<(), RoleError> {
    let outcome = crate::bootstrap::bootstrap(&plan.api, &plan.settings, &plan.files, plan.force)
        .await
        .map_err(RoleError::Bootstrap)?;
    match outcome {
        Outcome::Written(issued) => tracing::info!(
            csr = %issued.csr_name,
            cert = %plan.files.cert.display(),
            key = %plan.files.key.display(),
            valid_for = ?wait_until(SystemTime::now(), issued.info.not_after),
            "serving certificate written"
        ),
        Outcome::StillValid(info) => tracing::info!(
            cert = %plan.files.cert.display(),
            renew_in = ?wait_until(SystemTime::now(), renewal_due(info.not_before, info.not_after, plan.settings.margin)),
            "serving certificate still valid; nothing requested (--force requests anyway)"
        ),
    }
    Ok(())
}

/// A link-local HTTPS address needs a device carrying it (like YurtHub's `hub-dummy0`; a bridge
/// link because the `dummy` type is missing on some kernels).
async fn ensure_device(name: &str, ip: IpAddr) -> Result<(), HubError> {
    let link_local = matches!(ip, IpAddr::V4(v4) if v4.is_link_local());
    if name.is_empty() || !link_local {
        return Ok(());
    }
    let status = edgemesh_host::ensure_bridge_device(name, ip, 32)
        .await
        .map_err(|error| HubError::Device {
            name: name.to_owned(),
            ip,
            error: Box::new(error),
        })?;
    if status.created || status.address_added {
        tracing::info!(device = %name, %ip, "device carries the hub's address");
    }
    Ok(())
}

/// `/livez`, `/healthz`, `/readyz` and `/debug/hub`; `/metrics` is added by the caller.
fn admin_routes(status: StatusHandle) -> AdminServer {
    let debug = status.clone();
    // No loop to watch: the hub process ends as soon as any of its tasks ends
    // (`RunningHub::serve`), so while it answers, it lives.
    AdminServer::new()
        .liveness(Liveness::default())
        .route("/readyz", move || match status.readiness() {
            Ok(reason) => Reply::text(200, format!("ready: {reason}\n")),
            Err(reason) => Reply::text(503, format!("not ready: {reason}\n")),
        })
        .route("/debug/hub", move || {
            match serde_json::to_vec_pretty(&debug.status()) {
                Ok(body) => Reply::json(body),
                Err(e) => Reply::text(500, format!("cannot serialize the hub status: {e}\n")),
            }
        })
}
