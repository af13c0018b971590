//! The agent itself: its config, `/healthz`, `/readyz`.

use std::net::SocketAddr;

use crate::gather::Fetched;
use crate::plan::Plan;
use crate::report::Finding;

pub fn config(plan: &Plan) -> Finding {
    let message = format!("read {} (node {})", plan.source, plan.node_name);
    match plan.warnings.as_slice() {
        [] => Finding::pass("config", message),
        warnings => Finding::warn(
            "config",
            format!("{message}; {}", warnings.join("; ")),
            "correct the keys named (`edgemesh agent --check-config --config FILE` lists them)",
        ),
    }
}

pub fn health(admin: SocketAddr, healthz: &Fetched) -> Finding {
    const CHECK: &str = "agent.health";
    match healthz {
        Ok((200, _)) => Finding::pass(CHECK, format!("admin endpoint {admin} answers /healthz ok")),
        Ok((status, body)) => Finding::fail(
            CHECK,
            format!("/healthz {status}: {}", body.trim()),
            "a loop of the agent stopped: its log has the error; restart the agent (the kubelet's liveness probe does)",
        ),
        Err(e) => Finding::fail(
            CHECK,
            format!("the agent's admin endpoint does not answer: {e}"),
            "start the agent (kubectl -n kubeedge get pods -o wide); if it runs, pass its address with --admin-addr (commonConfig.adminAddr)",
        ),
    }
}

pub fn ready(readyz: &Fetched) -> Finding {
    const CHECK: &str = "agent.ready";
    match readyz {
        Ok((200, _)) => Finding::pass(CHECK, "ready: every source synced and its rules installed"),
        Ok((status, body)) => Finding::fail(
            CHECK,
            format!("/readyz {status}: {}", failed_components(body)),
            "the agent cannot list what it needs: see the api checks below and the agent's log (docs/troubleshooting.md, \"/readyz stays 503\")",
        ),
        Err(_) => Finding::skip(
            CHECK,
            "the admin endpoint does not answer (see agent.health)",
        ),
    }
}

/// The `[-]name failed: reason` lines of a `/readyz` body, joined; the whole body when it has
/// none (an agent from before the per-component answer).
fn failed_components(body: &str) -> String {
    let failed: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("[-]"))
        .collect();
    match failed.is_empty() {
        true => body.trim().to_owned(),
        false => failed.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn addr() -> SocketAddr {
        "127.0.0.1:10557".parse().unwrap()
    }

    #[test]
    fn health_pass_fail_and_unreachable() {
        assert_eq!(
            health(addr(), &Ok((200, "ok\n".into()))).status,
            Status::Pass
        );
        let stopped = health(
            addr(),
            &Ok((503, "unhealthy: stopped: dns server\n".into())),
        );
        assert_eq!(stopped.status, Status::Fail);
        assert!(stopped.message.contains("dns server"));
        let down = health(addr(), &Err("connect 127.0.0.1:10557: refused".into()));
        assert_eq!(down.status, Status::Fail);
        assert!(down.fix.contains("--admin-addr"));
    }

    #[test]
    fn ready_pass_fail_and_skip() {
        assert_eq!(ready(&Ok((200, "ready\n".into()))).status, Status::Pass);
        let waiting = ready(&Ok((503, "not ready: waiting\n".into())));
        assert_eq!(waiting.status, Status::Fail);
        let body = "[+]sources ok: every source has listed\n\
                    [-]rules failed: waiting for the first rule sync\n\
                    [-]tunnel failed: the tunnel driver has stopped\nnot ready\n";
        assert_eq!(
            ready(&Ok((503, body.into()))).message,
            "/readyz 503: rules failed: waiting for the first rule sync; tunnel failed: the tunnel driver has stopped"
        );
        assert_eq!(ready(&Err("refused".into())).status, Status::Skip);
    }

    #[test]
    fn config_warnings_warn() {
        let mut plan = crate::checks::tests::plan();
        assert_eq!(config(&plan).status, Status::Pass);
        plan.warnings
            .push("modules.edgeProxy.fooBar: unknown key".into());
        let finding = config(&plan);
        assert_eq!(finding.status, Status::Warn);
        assert!(finding.message.contains("fooBar"));
    }
}
