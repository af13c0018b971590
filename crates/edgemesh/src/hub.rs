//! `edgemesh hub`: the edge hub (crate `edgemesh-hub`: `cli` reads its flags, `role` runs it) in
//! the process set-up every role shares.

use std::process::ExitCode;

use edgemesh_hub::cli::{BootstrapArgs, HubArgs, HubCommand, bootstrap_plan};
use edgemesh_hub::role;

use crate::process;

pub fn main(mut args: HubArgs) -> ExitCode {
    if let Some(HubCommand::Bootstrap(bootstrap)) = args.command.take() {
        return bootstrap_main(*bootstrap);
    }
    let loaded = args.config().map_err(|e| [e]);
    let settled = process::settle_config("edgemesh hub", loaded, args.check_config, |(_, w)| {
        w.clone()
    });
    let (config, _) = match settled {
        Ok(settled) => settled,
        Err(code) => return code,
    };
    let shutdown = process::shutdown_signal();
    process::run_role(&args.log, || role::serve(config, &args.flags, shutdown))
}

fn bootstrap_main(args: BootstrapArgs) -> ExitCode {
    match bootstrap_plan(&args.flags) {
        Ok(plan) => process::run_role(&args.log, || role::bootstrap(plan)),
        Err(e) => {
            eprintln!("edgemesh hub bootstrap: {e}");
            ExitCode::from(process::EXIT_INVALID_CONFIG)
        }
    }
}
