//! Started under EdgeMesh's executable names, the binary is that role.
//!
//! EdgeMesh's DaemonSet passes no arguments: its image's entry point `edgemesh-agent` reads
//! `--config-file /etc/edgemesh/config/edgemesh-agent.yaml` by default. Our image links
//! `edgemesh-agent` to `edgemesh` (argv[0] tells which was started), so EdgeMesh's manifests run
//! it unchanged.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// EdgeMesh's default agent config file (`defaults.ConfigDir` + `EdgeMeshAgentConfigName`).
pub const EDGEMESH_AGENT_CONFIG: &str = "/etc/edgemesh/config/edgemesh-agent.yaml";

/// What the command line means once the executable's name is taken into account.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Parse these arguments as `edgemesh ...`.
    Edgemesh(Vec<OsString>),
}

/// Rewrites `argv` for the executable name it was started under: `edgemesh-agent [FLAGS]`
/// becomes `edgemesh agent [FLAGS]`, with EdgeMesh's default config file unless one is given.
pub fn invocation(argv: Vec<OsString>) -> Invocation {
    let name = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(OsStr::to_str)
        .unwrap_or("edgemesh");
    match name {
        "edgemesh-agent" if !names_a_subcommand(&argv) => {
            Invocation::Edgemesh(as_role("agent", argv))
        }
        "edgemesh-gateway" if !names_a_subcommand(&argv) => {
            Invocation::Edgemesh(as_role("gateway", argv))
        }
        _ => Invocation::Edgemesh(argv),
    }
}

/// Whether the first argument is a subcommand of `edgemesh` (`edgemesh-agent hub ...` still
/// reaches the other roles), as the command line itself defines them.
fn names_a_subcommand(argv: &[OsString]) -> bool {
    let mut edgemesh = <crate::cli::Cli as clap::CommandFactory>::command();
    edgemesh.build();
    argv.get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| edgemesh.find_subcommand(a).is_some())
}

/// `edgemesh ROLE [FLAGS]`; the agent gets EdgeMesh's default config file unless one is given
/// (the gateway's flag has that default itself).
fn as_role(role: &str, argv: Vec<OsString>) -> Vec<OsString> {
    let has_config = argv.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        ["--config", "--config-file", "-c"]
            .iter()
            .any(|flag| a == *flag || a.starts_with(&format!("{flag}=")))
    });
    let mut out: Vec<OsString> = vec!["edgemesh".into(), role.into()];
    if !has_config && role == "agent" {
        out.extend(["--config-file".into(), EDGEMESH_AGENT_CONFIG.into()]);
    }
    out.extend(argv.into_iter().skip(1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn edgemesh(args: &[&str]) -> Invocation {
        Invocation::Edgemesh(argv(args))
    }

    #[test]
    fn executable_name_picks_the_role() {
        let default_config = ["edgemesh", "agent", "--config-file", EDGEMESH_AGENT_CONFIG];
        let cases: [(&[&str], Invocation); 11] = [
            (&["edgemesh", "hub"], edgemesh(&["edgemesh", "hub"])),
            (
                &["/usr/local/bin/edgemesh-agent"],
                edgemesh(&default_config),
            ),
            (
                &["edgemesh-agent", "--v=4"],
                edgemesh(&[&default_config[..], &["--v=4"]].concat()),
            ),
            (
                &["edgemesh-agent", "--config-file", "/x.yaml"],
                edgemesh(&["edgemesh", "agent", "--config-file", "/x.yaml"]),
            ),
            (
                &["edgemesh-agent", "--config-file=/x.yaml"],
                edgemesh(&["edgemesh", "agent", "--config-file=/x.yaml"]),
            ),
            (
                &["edgemesh-agent", "-c", "/x.yaml"],
                edgemesh(&["edgemesh", "agent", "-c", "/x.yaml"]),
            ),
            (
                &["edgemesh-agent", "hub", "--help"],
                edgemesh(&["edgemesh-agent", "hub", "--help"]),
            ),
            (&["edgemesh-gateway"], edgemesh(&["edgemesh", "gateway"])),
            (
                &["edgemesh-gateway", "--config-file", "/g.yaml"],
                edgemesh(&["edgemesh", "gateway", "--config-file", "/g.yaml"]),
            ),
            (
                &["edgemesh-agent", "help"],
                edgemesh(&["edgemesh-agent", "help"]),
            ),
            (
                &["edgemesh-agent", "playground", "up"],
                edgemesh(&["edgemesh-agent", "playground", "up"]),
            ),
        ];
        for (args, want) in cases {
            assert_eq!(invocation(argv(args)), want, "{args:?}");
        }
    }
}
