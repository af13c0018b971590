//! The `edgemesh` binary: parses the command line and runs the chosen role.
#![forbid(unsafe_code)]

mod agent;
mod cli;
mod hub;
mod playground;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Agent(args) => agent::main(args),
        cli::Command::Hub(args) => hub::main(args),
        cli::Command::Playground(command) => playground::main(command),
        cli::Command::Version => {
            println!("edgemesh {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
