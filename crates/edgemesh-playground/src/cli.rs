//! The command line of `edgemesh playground`: its clap subcommands, and what each prints and
//! exits with. The `edgemesh` binary only dispatches here.

use std::io::Write;
use std::process::ExitCode;

use crate::check::table;
use crate::pods::Program;
use crate::up::{UpOptions, UpOutcome};
use crate::{Plan, PlaygroundError};
use clap::{Args, Subcommand, ValueEnum};

/// Subcommands of `edgemesh playground`.
#[derive(Debug, Subcommand)]
pub enum PlaygroundCommand {
    /// Build the cluster (cloud node, LAN A with two edge nodes, LAN B with one, NAT routers)
    /// and start an agent on every node and the example pods. Safe to run twice.
    Up {
        #[command(flatten)]
        common: Common,
        /// Start the agents without the tunnel: nodes then reach only their own LAN, and the
        /// cross-LAN checks are reported as skipped.
        #[arg(long)]
        no_tunnel: bool,
        /// Run the tunnel with `transport: quic`: nodes of a LAN move to QUIC once they have met
        /// over TCP, and the cross-LAN path is hole-punched over UDP.
        #[arg(long, conflicts_with = "no_tunnel")]
        quic: bool,
    },
    /// Run the checks a user would by hand (HTTP, TCP, UDP, WebSocket, DNS, load balancing,
    /// the filtered service) from a node in each LAN; exits non-zero if any fails.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Run a command on a node, e.g. `exec edge-a2 -- curl hostname-lb-svc.edgemesh-test:12345`.
    Exec {
        #[command(flatten)]
        common: Common,
        /// cloud, edge-a1, edge-a2, edge-b1, router-a or router-b.
        node: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Remove every namespace, link, rule, process and file the playground created (also
    /// after a crash). Safe to run twice.
    Down {
        #[command(flatten)]
        common: Common,
    },
    /// A pod program (started by `up` inside a node).
    #[command(hide = true)]
    Pod(PodArgs),
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Prefix of every namespace and of the state directory (lets CI run beside a user's
    /// playground): 1-8 lowercase letters or digits.
    #[arg(long, env = "EDGEMESH_PLAYGROUND_PREFIX", default_value = crate::DEFAULT_PREFIX)]
    prefix: String,
}

#[derive(Debug, Args)]
pub struct PodArgs {
    /// Which playground the pod belongs to (shows in `ps`; `down` finds pods by namespace).
    #[command(flatten)]
    common: Common,
    program: PodProgram,
    #[arg(long)]
    name: String,
    #[arg(long)]
    port: u16,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PodProgram {
    Hostname,
    TcpEcho,
    UdpEcho,
    WsEcho,
}

pub fn main(command: PlaygroundCommand) -> ExitCode {
    let result = match command {
        PlaygroundCommand::Up {
            common,
            no_tunnel,
            quic,
        } => up(&common, !no_tunnel, quic),
        PlaygroundCommand::Check { common } => check(&common),
        PlaygroundCommand::Exec {
            common,
            node,
            command,
        } => exec(&common, &node, &command),
        PlaygroundCommand::Down { common } => down(&common),
        PlaygroundCommand::Pod(args) => pod(&args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("edgemesh playground: {e}");
        ExitCode::FAILURE
    })
}

/// Progress to stdout; a closed pipe (`| head`) must not abort `up` or `down` half-way.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "playground: {line}");
}

fn up(common: &Common, tunnel: bool, quic: bool) -> Result<ExitCode, PlaygroundError> {
    let plan = Plan::new(&common.prefix)?;
    let binary = std::env::current_exe().map_err(|source| PlaygroundError::Spawn {
        command: "locate the running edgemesh binary".into(),
        error: source,
    })?;
    let options = UpOptions {
        plan,
        binary,
        tunnel,
        quic,
    };
    match crate::up::up(&options, &mut say)? {
        UpOutcome::AlreadyUp(state) => say(&format!(
            "already up ({} namespaces, {} processes running, tunnel {}); nothing changed",
            state.namespaces.len(),
            state.processes.len(),
            if state.tunnel { "on" } else { "off" }
        )),
        UpOutcome::Built { .. } => say(&format!(
            "up. Try: edgemesh playground check   or   edgemesh playground exec edge-a2 -- curl -s hostname-lb-svc.edgemesh-test:12345{}",
            prefix_hint(&options.plan)
        )),
    }
    Ok(ExitCode::SUCCESS)
}

fn prefix_hint(plan: &Plan) -> String {
    if plan.prefix() == crate::DEFAULT_PREFIX {
        String::new()
    } else {
        format!("  (add --prefix {})", plan.prefix())
    }
}

fn check(common: &Common) -> Result<ExitCode, PlaygroundError> {
    let plan = Plan::new(&common.prefix)?;
    let report = crate::check::check(&plan)?;
    let _ = write!(std::io::stdout(), "{}", table::render(&report));
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn exec(common: &Common, node: &str, command: &[String]) -> Result<ExitCode, PlaygroundError> {
    let plan = Plan::new(&common.prefix)?;
    let status = crate::exec::exec(&plan, node, command)?;
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1);
    Ok(ExitCode::from(code))
}

fn down(common: &Common) -> Result<ExitCode, PlaygroundError> {
    let plan = Plan::new(&common.prefix)?;
    let done = crate::down::down(&plan, &mut say)?;
    if done.is_empty() {
        say(&format!(
            "nothing to remove: no {}-* namespaces, processes or files",
            plan.prefix()
        ));
    } else {
        say(&format!("down: removed {} things", done.len()));
    }
    Ok(ExitCode::SUCCESS)
}

fn pod(args: &PodArgs) -> Result<ExitCode, PlaygroundError> {
    let program = match args.program {
        PodProgram::Hostname => Program::Hostname,
        PodProgram::TcpEcho => Program::TcpEcho,
        PodProgram::UdpEcho => Program::UdpEcho,
        PodProgram::WsEcho => Program::WsEcho,
    };
    crate::pod::run(program, &args.name, args.port)?;
    Ok(ExitCode::SUCCESS)
}
