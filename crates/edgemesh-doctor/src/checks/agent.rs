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
            format!("/readyz {status}: {}", body.trim()),
            "the agent cannot list what it needs: see the api checks below and the agent's log (docs/troubleshooting.md, \"/readyz stays 503\")",
        ),
        Err(_) => Finding::skip(
            CHECK,
            "the admin endpoint does not answer (see agent.health)",
        ),
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
