//! The `edgemesh` binary: parses the command line and runs the chosen role.
#![deny(unsafe_code)]

mod agent;
mod cli;
mod gateway;
mod hub;
mod mesh;
mod process;
mod roles;

/// mimalloc, as every edgemesh process (`edgemesh_runtime` says why).
#[global_allocator]
static ALLOCATOR: edgemesh_runtime::MiMalloc = edgemesh_runtime::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

pub use process::EXIT_INVALID_CONFIG;

fn main() -> ExitCode {
    let roles::Invocation::Edgemesh(argv) = roles::invocation(std::env::args_os().collect());
    let cli = cli::Cli::parse_from(argv);
    edgemesh_host::raise_fd_limit();
    match cli.command {
        cli::Command::Agent(args) => agent::main(args),
        cli::Command::Hub(args) => hub::main(args),
        cli::Command::Gateway(args) => gateway::main(*args),
        cli::Command::Playground(command) => edgemesh_playground::cli::main(command),
        cli::Command::Doctor(args) => edgemesh_doctor::run(args),
        cli::Command::Version => {
            println!("edgemesh {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
