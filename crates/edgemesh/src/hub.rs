//! `edgemesh hub`: the edge hub (crate `edgemesh-hub`) — flags, the link-local device, the admin
//! endpoint, and the runtime.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use edgemesh_hub::config::{DEFAULT_CACHE_DIR, DEFAULT_INSECURE_ADDR, DEFAULT_SECURE_ADDR};
use edgemesh_hub::{HealthConfig, Hub, HubConfig, StatusHandle};
use edgemesh_telemetry::{AdminServer, Registry, Reply};

use crate::logs::LogArgs;
use crate::process;

/// Flags of `edgemesh hub` (boxed: they are many, and the CLI enum stays small).
#[derive(Debug, Args)]
pub struct HubArgs {
    #[command(flatten)]
    pub flags: Box<HubFlags>,
}

/// The flags themselves. Names follow YurtHub's where it has one.
#[derive(Debug, Args)]
pub struct HubFlags {
    /// Upstream kube-apiserver URL(s), comma separated, in failover order.
    #[arg(long, value_name = "URL[,URL]", value_delimiter = ',', required = true)]
    pub server_addr: Vec<String>,

    /// PEM CA bundle that signs the upstream apiservers' certificates.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Bearer token file: the node's identity, for the hub's own requests (reading ConfigMap
    /// kube-system/edge-hub-cfg) and for node components on the plain-HTTP front that send no
    /// credentials (as YurtHub does). Read at each use, so a rotated token applies at once.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// HTTPS address for pods; empty disables it.
    #[arg(long, default_value = DEFAULT_SECURE_ADDR, value_name = "ADDR")]
    pub secure_addr: String,

    /// Plain-HTTP address for node components; empty disables it.
    #[arg(long, default_value = DEFAULT_INSECURE_ADDR, value_name = "ADDR")]
    pub insecure_addr: String,

    /// Serving certificate (PEM), reloaded when it changes.
    #[arg(long, value_name = "PATH")]
    pub cert_file: Option<PathBuf>,

    /// Private key of the serving certificate (PEM), reloaded when it changes.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// Link created (idempotently) to carry a link-local --secure-addr; empty: do not create one.
    #[arg(long, default_value = "edgemesh-hub0", value_name = "NAME")]
    pub hub_device: String,

    /// Cache directory (YurtHub layout: <User-Agent>/<resource>.<version>.<group>/<ns>/<name>).
    #[arg(long, default_value = DEFAULT_CACHE_DIR, value_name = "DIR")]
    pub cache_dir: PathBuf,

    /// User-Agents to cache, comma separated (`*` = all), in addition to the ConfigMap's.
    #[arg(long, default_value = "", value_name = "LIST")]
    pub cache_agents: String,

    /// ConfigMap with `cache_agents` (namespace/name); empty disables it.
    #[arg(
        long,
        default_value = "kube-system/edge-hub-cfg",
        value_name = "NS/NAME"
    )]
    pub config_map: String,

    /// How often the ConfigMap is read while online.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub config_poll_interval: Duration,

    /// Time between health probes of each upstream.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Duration,

    /// Timeout of one health probe.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub heartbeat_timeout: Duration,

    /// Failed probes in a row that make an upstream unhealthy.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub heartbeat_failed_retry: u32,

    /// Successful probes in a row that make an upstream healthy again.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub heartbeat_healthy_threshold: u32,

    /// Path probed on each upstream (any answer below 500 is healthy).
    #[arg(long, default_value = "/readyz", value_name = "PATH")]
    pub heartbeat_path: String,

    /// Connect timeout towards the upstreams (a failed connect switches to offline at once).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub connect_timeout: Duration,

    /// Interval of bookmarks on offline watches that ask for them.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub bookmark_interval: Duration,

    /// Admin endpoint (/healthz, /readyz, /metrics, /debug/hub). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:10267", value_name = "ADDR")]
    pub admin_addr: SocketAddr,

    #[command(flatten)]
    pub log: LogArgs,
}

/// `500ms`, `2s`, `1m`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 500ms, 2s or 1m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("'{text}': unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("'{text}': {e}"))
}

fn optional_addr(flag: &str, text: &str) -> Result<Option<SocketAddr>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("--{flag} '{text}' is not an address like 127.0.0.1:10261"))
}

fn config_of(args: &HubFlags) -> Result<HubConfig, String> {
    let config_map = match args.config_map.trim() {
        "" => None,
        text => match text.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                Some((ns.to_string(), name.to_string()))
            }
            _ => return Err(format!("--config-map '{text}' must be namespace/name")),
        },
    };
    let config = HubConfig {
        secure_addr: optional_addr("secure-addr", &args.secure_addr)?,
        insecure_addr: optional_addr("insecure-addr", &args.insecure_addr)?,
        cert_file: args.cert_file.clone(),
        key_file: args.key_file.clone(),
        server_addrs: args
            .server_addr
            .iter()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect(),
        ca_file: args.ca_file.clone(),
        token_file: args.token_file.clone(),
        cache_dir: args.cache_dir.clone(),
        cache_agents: args.cache_agents.clone(),
        config_map,
        config_poll_interval: args.config_poll_interval,
        health: HealthConfig {
            interval: args.heartbeat_interval,
            timeout: args.heartbeat_timeout,
            failure_threshold: args.heartbeat_failed_retry,
            success_threshold: args.heartbeat_healthy_threshold,
            path: args.heartbeat_path.clone(),
        },
        connect_timeout: args.connect_timeout,
        bookmark_interval: args.bookmark_interval,
        ..HubConfig::default()
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

pub fn main(args: HubArgs) -> ExitCode {
    let args = args.flags;
    let config = match config_of(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("edgemesh hub: {e}");
            return ExitCode::from(process::EXIT_INVALID_CONFIG);
        }
    };
    process::run_role(&args.log, || run(config, &args))
}

async fn run(config: HubConfig, args: &HubFlags) -> anyhow::Result<()> {
    if let Some(addr) = config.secure_addr {
        ensure_device(&args.hub_device, addr.ip()).await?;
    }
    let mut registry = Registry::default();
    let hub = Hub::start(config, &mut registry).await?;
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

/// A link-local HTTPS address needs a device carrying it (like YurtHub's `hub-dummy0`; a bridge
/// link because the `dummy` type is missing on some kernels).
async fn ensure_device(name: &str, ip: IpAddr) -> anyhow::Result<()> {
    let link_local = matches!(ip, IpAddr::V4(v4) if v4.is_link_local());
    if name.is_empty() || !link_local {
        return Ok(());
    }
    let status = edgemesh_host::ensure_bridge_device(name, ip, 32)
        .await
        .with_context(|| {
            format!(
                "cannot put {ip} on device {name} (needs CAP_NET_ADMIN; or pass --hub-device '')"
            )
        })?;
    if status.created || status.address_added {
        tracing::info!("device {name} carries {ip}");
    }
    Ok(())
}

fn admin_routes(status: StatusHandle) -> AdminServer {
    let debug = status.clone();
    AdminServer::new()
        .route("/healthz", || Reply::text(200, "ok\n"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let table = [
            ("500ms", 500),
            ("2s", 2000),
            ("3", 3000),
            ("1m", 60_000),
            ("0.5s", 500),
        ];
        for (text, ms) in table {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_millis(ms),
                "{text}"
            );
        }
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("x").is_err());
    }
}
