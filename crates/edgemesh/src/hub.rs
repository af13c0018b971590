//! `edgemesh hub`: wiring of the edge hub (crate `edgemesh-hub`). Placeholder until it lands.

use std::process::ExitCode;

use clap::Args;

/// Flags of `edgemesh hub`.
#[derive(Debug, Args)]
pub struct HubArgs {}

pub fn main(_args: HubArgs) -> ExitCode {
    eprintln!("edgemesh hub: not built yet");
    ExitCode::from(2)
}
