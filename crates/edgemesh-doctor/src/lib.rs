//! `edgemesh doctor`: run on a node, it reads the agent's config (with the agent's own loader)
//! and the agent's admin endpoint, and checks what EdgeMesh users trip on: rule order against
//! kube-proxy, the proxy port in the ephemeral range, the node-local DNS, the API and RBAC, the
//! tunnel's PSK, relays and peers, the edge hub. Each check prints PASS/WARN/FAIL (or SKIP) with
//! a one-line fix; the exit status is 1 when any check fails.
//!
//! ```text
//! plan (config)  →  gather (thin, time-bounded reads)  →  checks (pure)  →  report
//! ```
#![forbid(unsafe_code)]

pub mod checks;
pub mod gather;
pub mod plan;
pub mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use edgemesh_config::{Env, SourceArgs};

use crate::report::Finding;

/// Flags of `edgemesh doctor`. Those it shares with `edgemesh agent` are the agent's
/// [`SourceArgs`]: they mean the same; only their help speaks of the agent.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("config", |a| a.help(
        "The agent's config file (`--config-file` is EdgeMesh's name for it). Default: \
         EdgeMesh's /etc/edgemesh/config/edgemesh-agent.yaml when it exists, else the agent's \
         defaults"
    )),
    mut_arg("node_name", |a| a.help("Name of this node (falls back to the host name), as for the agent")),
    mut_arg("kubeconfig", |a| a.help("kubeconfig the agent uses (as `edgemesh agent --kubeconfig`)")),
    mut_arg("master", |a| a.help("API server URL the agent uses (as `edgemesh agent --master`)")),
    mut_arg("manifests", |a| a.help(
        "The agent's manifests directory (as `edgemesh agent --manifests`): alone, no API is \
         checked"
    )),
    mut_arg("admin_addr", |a| a.help(
        "The agent's admin endpoint (default: commonConfig.adminAddr, 127.0.0.1:10557)"
    )),
)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub sources: SourceArgs,

    /// The edge hub's admin endpoint; checked when given, or at 127.0.0.1:10267 when
    /// modules.edgeProxy.edgeHubAddress is configured.
    #[arg(long, value_name = "ADDR")]
    pub hub_admin_addr: Option<SocketAddr>,

    /// The resolver configuration to look for the node-local DNS address in.
    #[arg(long, default_value = "/etc/resolv.conf", value_name = "PATH")]
    pub resolv_conf: PathBuf,

    /// The name to ask the node-local DNS for (default: kubernetes.default.svc.DOMAIN, or a
    /// service the agent knows).
    #[arg(long, value_name = "NAME")]
    pub dns_name: Option<String>,

    /// How long each probe may take, in seconds.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub timeout: f64,

    /// Output: a table for people, or a JSON array of {check, status, message, fix}.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Runs every check and prints the report: 0 when nothing failed, 1 otherwise.
pub fn run(args: DoctorArgs) -> ExitCode {
    let findings = findings(&args);
    match args.output {
        Output::Table => print!("{}", report::table(&findings)),
        Output::Json => println!("{}", report::json(&findings)),
    }
    match report::any_failed(&findings) {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
    }
}

/// The findings for `args`: a config the agent would refuse is one FAIL and nothing else.
pub fn findings(args: &DoctorArgs) -> Vec<Finding> {
    let inputs = plan::Inputs {
        config: args.sources.config.clone(),
        overrides: args.sources.overrides(),
        hub_admin: args.hub_admin_addr,
    };
    let plan = match plan::load(&inputs, &Env::from_process()) {
        Ok(plan) => plan,
        Err(errors) => {
            return vec![Finding::fail(
                "config",
                errors.messages().join("; "),
                "the agent refuses this configuration too: correct the keys named (docs/configuration.md)",
            )];
        }
    };
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .unwrap_or(Duration::from_secs(2));
    let options = gather::Options {
        timeout,
        resolv_conf: args.resolv_conf.clone(),
        dns_name: args.dns_name.clone(),
    };
    let facts = gather::gather(&plan, &options);
    checks::all(&plan, &facts)
}
