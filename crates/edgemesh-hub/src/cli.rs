//! The command line of `edgemesh hub` and `edgemesh hub bootstrap`: their flags and their
//! translation into a [`HubConfig`] or a [`BootstrapPlan`]; [`crate::role`] runs them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use edgemesh_telemetry::LogArgs;

use crate::bootstrap::{Api, CertFiles, CsrSettings, Identity};
use crate::config::{DEFAULT_CACHE_DIR, DEFAULT_INSECURE_ADDR, DEFAULT_SECURE_ADDR};
use crate::creds::OwnToken;
use crate::upstream::{self, Upstream};
use crate::{HealthConfig, HubConfig};

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

impl HubArgs {
    /// The hub's configuration and, with `--check-config`, the warnings of reading its files;
    /// the error names the flag or file.
    pub fn config(&self) -> Result<(HubConfig, Vec<String>), String> {
        let config = config_of(&self.flags)?;
        let warnings = match self.check_config {
            true => config.check().map_err(|e| e.to_string())?,
            false => Vec::new(),
        };
        Ok((config, warnings))
    }
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

/// How the hub reaches the apiserver: shared by `edgemesh hub` and `edgemesh hub bootstrap`.
#[derive(Debug, Clone, Args)]
pub struct ApiFlags {
    /// Upstream kube-apiserver URL(s), comma separated, in failover order.
    #[arg(long, value_name = "URL[,URL]", value_delimiter = ',', required = true)]
    pub server_addr: Vec<String>,

    /// PEM CA bundle that signs the upstream apiservers' certificates.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Bearer token file: the node's identity, for the hub's own requests (reading ConfigMap
    /// kube-system/edge-hub-cfg, certificate requests) and for node components on the
    /// plain-HTTP front that send no credentials (as YurtHub does). Read at each use, so a
    /// rotated token applies at once.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// The HTTPS listener and its serving pair: shared by `edgemesh hub` and `edgemesh hub
/// bootstrap` (which writes the pair the hub serves with).
#[derive(Debug, Clone, Args)]
pub struct ServingFlags {
    /// HTTPS address for pods; empty disables it.
    #[arg(long, default_value = DEFAULT_SECURE_ADDR, value_name = "ADDR")]
    pub secure_addr: String,

    /// Serving certificate (PEM), reloaded when it changes.
    #[arg(long, value_name = "PATH")]
    pub cert_file: Option<PathBuf>,

    /// Private key of the serving certificate (PEM), reloaded when it changes.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

/// The certificate request (`edgemesh hub bootstrap`, and renewal with
/// `--rotate-server-certificate`).
#[derive(Debug, Clone, Args)]
pub struct CsrFlags {
    /// Node the hub runs on: the certificate is for `system:node:<NAME>` (what signer
    /// kubernetes.io/kubelet-serving requires). Set it from spec.nodeName in a pod.
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,

    /// Extra names for the serving certificate, comma separated: IP literals become IP SANs,
    /// anything else a DNS name. The --secure-addr IP, 127.0.0.1 and localhost are always in.
    #[arg(long, value_delimiter = ',', value_name = "NAME[,NAME]")]
    pub tls_san: Vec<String>,

    /// How long to wait for an approver and the signer before giving up.
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub csr_timeout: Duration,

    /// Requested certificate lifetime (spec.expirationSeconds; the apiserver refuses less than
    /// 10m); default: the signer's (kube-controller-manager --cluster-signing-duration, 1 year).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub cert_lifetime: Option<Duration>,

    /// Renew when less than this is left, if that comes before 80% of the lifetime.
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub cert_renew_before: Duration,
}

/// Flags of `edgemesh hub` but `--check-config` and the log flags. Names follow YurtHub's where
/// it has one.
#[derive(Debug, Args)]
pub struct HubFlags {
    #[command(flatten)]
    pub api: ApiFlags,

    #[command(flatten)]
    pub serving: ServingFlags,

    /// Plain-HTTP address for node components; empty disables it.
    #[arg(long, default_value = DEFAULT_INSECURE_ADDR, value_name = "ADDR")]
    pub insecure_addr: String,

    /// Renew the serving certificate through the certificates API before it expires, as
    /// `edgemesh hub bootstrap` got it (needs --node-name and RBAC create/get/watch on
    /// certificatesigningrequests); the HTTPS listener reloads it without a restart.
    #[arg(long)]
    pub rotate_server_certificate: bool,

    #[command(flatten)]
    pub csr: CsrFlags,

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
}

/// `500ms`, `2s`, `1m`, `720h` (certificate lifetimes), or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 500ms, 2s, 1m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("'{text}': unit must be ms, s, m or h")),
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

/// The hub's configuration from its flags, validated; the error names the flag.
pub fn config_of(args: &HubFlags) -> Result<HubConfig, String> {
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
        secure_addr: optional_addr("secure-addr", &args.serving.secure_addr)?,
        insecure_addr: optional_addr("insecure-addr", &args.insecure_addr)?,
        cert_file: args.serving.cert_file.clone(),
        key_file: args.serving.key_file.clone(),
        server_addrs: server_addrs(&args.api),
        ca_file: args.api.ca_file.clone(),
        token_file: args.api.token_file.clone(),
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
        renewal: renewal_of(args)?,
        ..HubConfig::default()
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn server_addrs(api: &ApiFlags) -> Vec<String> {
    api.server_addr
        .iter()
        .filter(|s| !s.trim().is_empty())
        .cloned()
        .collect()
}

/// What the certificate request asks for, from the flags; the error names the flag.
pub fn csr_settings(csr: &CsrFlags, serving: &ServingFlags) -> Result<CsrSettings, String> {
    let node_name = csr
        .node_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or(
            "--node-name (or NODE_NAME) is required: the certificate is for system:node:<name>",
        )?;
    let listen = optional_addr("secure-addr", &serving.secure_addr)?;
    if csr.csr_timeout.is_zero() {
        return Err("--csr-timeout must be greater than zero".into());
    }
    Ok(CsrSettings {
        identity: Identity::new(node_name, listen.map(|a| a.ip()), &csr.tls_san),
        timeout: csr.csr_timeout,
        lifetime: csr.cert_lifetime,
        margin: csr.cert_renew_before,
    })
}

fn renewal_of(args: &HubFlags) -> Result<Option<CsrSettings>, String> {
    if !args.rotate_server_certificate {
        return Ok(None);
    }
    csr_settings(&args.csr, &args.serving).map(Some)
}

/// Flags of `edgemesh hub bootstrap` but the log flags.
#[derive(Debug, Clone, Args)]
pub struct BootstrapFlags {
    #[command(flatten)]
    pub api: ApiFlags,

    #[command(flatten)]
    pub serving: ServingFlags,

    #[command(flatten)]
    pub csr: CsrFlags,

    /// Request a new certificate even when the one at --cert-file is valid, belongs to
    /// --key-file, covers the wanted names and is not yet due for renewal.
    #[arg(long)]
    pub force: bool,
}

/// Everything `edgemesh hub bootstrap` needs, validated from its flags.
#[derive(Debug)]
pub struct BootstrapPlan {
    pub api: Api,
    pub settings: CsrSettings,
    pub files: CertFiles,
    pub force: bool,
}

/// Bound of one certificates-API request of `edgemesh hub bootstrap`.
const BOOTSTRAP_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The plan of `edgemesh hub bootstrap` from its flags; the error names the flag.
pub fn bootstrap_plan(args: &BootstrapFlags) -> Result<BootstrapPlan, String> {
    let (Some(cert), Some(key)) = (&args.serving.cert_file, &args.serving.key_file) else {
        return Err("--cert-file and --key-file are required: where to write the pair".into());
    };
    let upstreams = server_addrs(&args.api)
        .iter()
        .map(|u| Upstream::parse(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if upstreams.is_empty() {
        return Err("--server-addr is required (the apiserver URL)".into());
    }
    let client = upstream::clients(args.api.ca_file.as_deref(), BOOTSTRAP_REQUEST_TIMEOUT)
        .map_err(|e| e.to_string())?
        .pooled;
    let api = Api::new(
        client,
        Arc::new(upstreams),
        OwnToken::new(args.api.token_file.as_deref()),
        BOOTSTRAP_REQUEST_TIMEOUT,
    );
    Ok(BootstrapPlan {
        api,
        settings: csr_settings(&args.csr, &args.serving)?,
        files: CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        force: args.force,
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
            ("2h", 7_200_000),
        ];
        for (text, ms) in table {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_millis(ms),
                "{text}"
            );
        }
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("x").is_err());
    }

    fn csr_flags(node_name: Option<&str>) -> CsrFlags {
        CsrFlags {
            node_name: node_name.map(str::to_owned),
            tls_san: vec!["hub.edge".into()],
            csr_timeout: Duration::from_secs(60),
            cert_lifetime: None,
            cert_renew_before: Duration::ZERO,
        }
    }

    fn serving(secure_addr: &str) -> ServingFlags {
        ServingFlags {
            secure_addr: secure_addr.into(),
            cert_file: Some("/pki/tls.crt".into()),
            key_file: Some("/pki/tls.key".into()),
        }
    }

    #[test]
    fn certificate_requests_need_a_node_and_take_the_listen_address() {
        let err = csr_settings(&csr_flags(None), &serving(DEFAULT_SECURE_ADDR)).unwrap_err();
        assert!(err.contains("--node-name"), "{err}");
        let err = csr_settings(&csr_flags(Some(" ")), &serving(DEFAULT_SECURE_ADDR)).unwrap_err();
        assert!(err.contains("--node-name"), "{err}");
        let settings =
            csr_settings(&csr_flags(Some("edge-1")), &serving(DEFAULT_SECURE_ADDR)).unwrap();
        let ips: Vec<String> = settings
            .identity
            .ips
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ips, ["169.254.2.1", "127.0.0.1"]);
        assert_eq!(settings.identity.dns_names, ["localhost", "hub.edge"]);
        let zero = CsrFlags {
            csr_timeout: Duration::ZERO,
            ..csr_flags(Some("edge-1"))
        };
        assert!(csr_settings(&zero, &serving("")).is_err());
    }

    #[test]
    fn renewal_needs_the_https_listener() {
        let mut config = HubConfig {
            server_addrs: vec!["https://192.0.2.1:6443".into()],
            secure_addr: None,
            ..HubConfig::default()
        };
        config.renewal = Some(csr_settings(&csr_flags(Some("edge-1")), &serving("")).unwrap());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("--rotate-server-certificate"), "{err}");
    }
}
