//! The `edgemesh` binary: parses the command line and runs the chosen role.
#![forbid(unsafe_code)]

mod agent;
mod cli;
mod gateway;
mod hub;
mod mesh;
mod process;
mod roles;

use std::process::ExitCode;

use clap::Parser;

pub use process::EXIT_INVALID_CONFIG;

/// mimalloc instead of glibc malloc: with glibc, the memory of a load peak (thousands of
/// tunnelled connections, their copy buffers and yamux state) stayed resident after every
/// connection had closed, an agent growing by megabytes per round of load, in its per-thread
/// arenas (one arena: less, but not reliably). The state itself is freed: mimalloc returns it
/// (docs/tunnel.md, "Memory after load"; `netns_memory_returns_after_load`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
