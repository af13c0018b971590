//! `edgemesh hub`: the edge hub (crate `edgemesh-hub`, whose `cli` module holds its flags, the
//! link-local device and the admin routes) with the shared log flags, on the runtime.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use edgemesh_hub::bootstrap::{Outcome, renewal_due, wait_until};
use edgemesh_hub::cli::{
    BootstrapFlags, BootstrapPlan, HubFlags, admin_routes, bootstrap_plan, config_of, ensure_device,
};
use edgemesh_hub::{Hub, HubConfig};

use crate::logs::LogArgs;
use crate::process;

/// Flags of `edgemesh hub` (boxed: they are many, and the CLI enum stays small).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct HubArgs {
    #[command(subcommand)]
    pub command: Option<HubCommand>,

    #[command(flatten)]
    pub flags: Box<HubFlags>,

    /// Check the flags, the serving certificate and key and the upstream CA, print every
    /// warning, and exit: 0 when the hub would start, 2 when it would refuse. Starts nothing
    /// (use it on a manifest's flags before rolling it out).
    #[arg(long)]
    pub check_config: bool,

    #[command(flatten)]
    pub log: LogArgs,
}

/// What `edgemesh hub` runs besides the hub itself.
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Get the hub's HTTPS serving certificate from the Kubernetes certificates API, write it
    /// to --cert-file/--key-file and exit (run it before the hub, e.g. as an initContainer).
    ///
    /// It makes a new ECDSA P-256 key and creates a certificates.k8s.io/v1
    /// CertificateSigningRequest for signer kubernetes.io/kubelet-serving (signed by the cluster
    /// CA, which pods already trust): subject CN=system:node:<--node-name>, O=system:nodes;
    /// SANs the --secure-addr IP, 127.0.0.1, localhost and --tls-san. An admin approves it
    /// (`kubectl certificate approve <name>`, the name is logged) or an auto-approver does;
    /// then kube-controller-manager issues the certificate. It waits at most --csr-timeout.
    /// Key and certificate are written atomically, 0600. When the pair on disk is still good
    /// (valid, matching, covering the names, not yet due for renewal) nothing is requested,
    /// unless --force. RBAC: create, get and watch on certificatesigningrequests.
    /// Exit status: 0 written or still valid, 1 denied/failed/refused/timed out, 2 bad flags.
    Bootstrap(Box<BootstrapArgs>),
}

/// Flags of `edgemesh hub bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub flags: BootstrapFlags,

    #[command(flatten)]
    pub log: LogArgs,
}

pub fn main(args: HubArgs) -> ExitCode {
    if let Some(HubCommand::Bootstrap(bootstrap)) = args.command {
        return bootstrap_main(*bootstrap);
    }
    let HubArgs {
        flags: args,
        log,
        check_config,
        ..
    } = args;
    let loaded = config_of(&args).and_then(|config| {
        let warnings = match check_config {
            true => config.check().map_err(|e| e.to_string())?,
            false => Vec::new(),
        };
        Ok((config, warnings))
    });
    let settled = process::settle_config(
        "edgemesh hub",
        loaded.map_err(|e| [e]),
        check_config,
        |(_, warnings)| warnings.clone(),
    );
    let (config, _) = match settled {
        Ok(settled) => settled,
        Err(code) => return code,
    };
    process::run_role(&log, || run(config, &args))
}

fn bootstrap_main(args: BootstrapArgs) -> ExitCode {
    let BootstrapArgs { flags, log } = args;
    let plan = match bootstrap_plan(&flags) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("edgemesh hub bootstrap: {e}");
            return ExitCode::from(process::EXIT_INVALID_CONFIG);
        }
    };
    process::run_role(&log, || bootstrap(plan))
}

async fn bootstrap(plan: BootstrapPlan) -> anyhow::Result<()> {
    let outcome =
        edgemesh_hub::bootstrap::bootstrap(&plan.api, &plan.settings, &plan.files, plan.force)
            .await
            .context("hub bootstrap failed")?;
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

async fn run(config: HubConfig, args: &HubFlags) -> anyhow::Result<()> {
    if let Some(addr) = config.secure_addr {
        ensure_device(&args.hub_device, addr.ip()).await?;
    }
    let mut registry = edgemesh_telemetry::role_registry("hub");
    let rotating = config.renewal.is_some();
    let hub = Hub::start(config, &mut registry).await.map_err(|e| {
        let error = anyhow::Error::new(e);
        if rotating {
            // Renewal starts from a pair on disk: the first one comes from bootstrap.
            error.context(
                "with --rotate-server-certificate the first pair comes from `edgemesh hub bootstrap` (run it before the hub, e.g. as an initContainer)",
            )
        } else {
            error
        }
    })?;
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
