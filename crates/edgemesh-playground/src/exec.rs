//! `edgemesh playground exec NODE -- CMD...`: runs a command on a node (in its namespace, with
//! the node's resolv.conf, so `curl hostname-lb-svc.edgemesh-test:12345` works as in a pod).

use std::process::{Command, ExitStatus};

use crate::PlaygroundError;
use crate::host::{list_netns, require_root};
use crate::plan::{NODES, Plan, ROUTERS};

/// Runs `argv` in `node`'s namespace with the caller's stdin/stdout/stderr; returns its status.
pub fn exec(plan: &Plan, node: &str, argv: &[String]) -> Result<ExitStatus, PlaygroundError> {
    require_root()?;
    let known = NODES
        .iter()
        .map(|n| n.name)
        .chain(ROUTERS.iter().map(|r| r.name));
    if !known.clone().any(|n| n == node) {
        return Err(PlaygroundError::UnknownNode(node.to_owned()));
    }
    let ns = plan.netns(node);
    if !list_netns()?.contains(&ns) {
        return Err(PlaygroundError::NotUp(format!("/run/netns/{ns}").into()));
    }
    let (program, args) = argv.split_first().ok_or_else(|| PlaygroundError::Command {
        command: format!("exec {node}"),
        status: "not run".into(),
        stderr: "no command given: edgemesh playground exec NODE -- CMD [ARGS...]".into(),
    })?;
    Command::new("ip")
        .args(["netns", "exec", &ns, program])
        .args(args)
        .status()
        .map_err(|source| PlaygroundError::Spawn {
            command: format!("ip netns exec {ns} {program}"),
            error: source,
        })
}
