//! `edgemesh playground`: a multi-LAN edge cluster from network namespaces. Placeholder.

use std::process::ExitCode;

use clap::Subcommand;

/// Subcommands of `edgemesh playground`.
#[derive(Debug, Subcommand)]
pub enum PlaygroundCommand {
    /// Build the cluster and start the agents and pods.
    Up,
}

pub fn main(_command: PlaygroundCommand) -> ExitCode {
    eprintln!("edgemesh playground: not built yet");
    ExitCode::from(2)
}
