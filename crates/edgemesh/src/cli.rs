//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use edgemesh_config::SourceArgs;
use edgemesh_telemetry::LogArgs;

/// Where the agent keeps its tunnel key and peer pins unless told otherwise.
const STATE_DIR: &str = "/var/lib/edgemesh";

/// edgemesh: an edge service mesh for Kubernetes.
///
/// Applications on edge nodes reach each other through ordinary Kubernetes Services, across LANs
/// and NAT, and keep working while the edge is cut off from the cloud.
#[derive(Debug, Parser)]
#[command(name = "edgemesh", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent: service discovery, ClusterIP proxy, node-local DNS, tunnel.
    Agent(AgentArgs),
    /// Run the edge hub: an HTTPS kube-apiserver proxy that caches for offline operation.
    Hub(edgemesh_hub::cli::HubArgs),
    /// Run the ingress gateway: external traffic into the mesh by Istio Gateways and
    /// VirtualServices (EdgeMesh's edgemesh-gateway), HTTP, HTTP/2, TLS, TCP.
    Gateway(Box<edgemesh_gateway::cli::GatewayArgs>),
    /// Build a multi-LAN edge cluster from network namespaces on this machine and run the examples.
    #[command(subcommand)]
    Playground(edgemesh_playground::cli::PlaygroundCommand),
    /// Check this node for what EdgeMesh users trip on (rule order, ports, DNS, API and RBAC,
    /// tunnel, hub): PASS/WARN/FAIL with a fix each; exit status 1 when a check fails.
    Doctor(edgemesh_doctor::DoctorArgs),
    /// Print the version and build information.
    Version,
}

/// Flags of `edgemesh agent`. Flags override the config file.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub sources: SourceArgs,

    /// Directory for state kept across restarts: the tunnel's node key and the peer pins.
    #[arg(long, env = "EDGEMESH_STATE_DIR", default_value = STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,

    /// Remove everything the agent installed on this host (nftables table, iptables chains and
    /// jumps, the UDP policy route), then exit. Rules are otherwise left in place on a stop or a
    /// crash, so a restarting agent takes over without a gap.
    #[arg(long)]
    pub cleanup: bool,

    /// Read and validate the config file and flags, print every warning, and exit: 0 when the
    /// agent would start, 2 when it would refuse. Touches nothing on the host (use it on a copy of
    /// a ConfigMap before swapping the image).
    #[arg(long, conflicts_with = "cleanup")]
    pub check_config: bool,

    #[command(flatten)]
    pub log: LogArgs,
}
