//! The node-local DNS server: does it answer, and does this node's resolver use it.

use std::net::IpAddr;
use std::path::Path;

use crate::gather::dns::Outcome;
use crate::plan::DnsPlan;
use crate::report::Finding;

pub fn server(outcome: Option<&Outcome>) -> Finding {
    const CHECK: &str = "dns.server";
    let Some(Outcome {
        server,
        name,
        result,
    }) = outcome
    else {
        return Finding::skip(CHECK, "modules.edgeDNS is off");
    };
    match result {
        Ok(answer) if answer.rcode == "NOERROR" && answer.answers > 0 => Finding::pass(
            CHECK,
            format!("{server} answered {name} ({} answers)", answer.answers),
        ),
        Ok(answer) => Finding::warn(
            CHECK,
            format!(
                "{server} answers, but {name}: {}, {} answers",
                answer.rcode, answer.answers
            ),
            "the service is not in the agent's view: curl the admin endpoint's /debug/snapshot; a custom cluster domain goes in modules.edgeDNS.clusterDomain",
        ),
        Err(e) => Finding::fail(
            CHECK,
            format!("{server} does not answer {name}: {e}"),
            format!(
                "check modules.edgeDNS.enable, that the bridge device carries {} (ip addr show edgemesh0), and that nothing drops udp/{} to it; the agent's log names a DNS start-up error",
                server.ip(),
                server.port()
            ),
        ),
    }
}

pub fn resolv_conf(plan: Option<&DnsPlan>, path: &Path, text: &Result<String, String>) -> Finding {
    const CHECK: &str = "dns.resolv";
    let Some(plan) = plan else {
        return Finding::skip(CHECK, "modules.edgeDNS is off");
    };
    let ip = plan.addr.ip();
    let fix = format!(
        "pods need it as their nameserver: set clusterDNS: [{ip}] in edgecore's edged (or kubelet --cluster-dns={ip}); for the node itself add `nameserver {ip}` to {}",
        path.display()
    );
    let text = match text {
        Ok(text) => text,
        Err(e) => return Finding::warn(CHECK, e.clone(), fix),
    };
    let servers: Vec<IpAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse().ok())
        .collect();
    match servers.contains(&ip) {
        true => Finding::pass(CHECK, format!("{} lists nameserver {ip}", path.display())),
        false => Finding::warn(
            CHECK,
            format!(
                "{} does not list {ip} (nameservers: {})",
                path.display(),
                list(&servers)
            ),
            fix,
        ),
    }
}

fn list(servers: &[IpAddr]) -> String {
    match servers {
        [] => "none".to_owned(),
        s => s
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gather::dns::Answer;
    use crate::report::Status;

    fn outcome(result: Result<Answer, String>) -> Outcome {
        Outcome {
            server: "169.254.96.16:53".parse().unwrap(),
            name: "kubernetes.default.svc.cluster.local".into(),
            result,
        }
    }

    fn answer(rcode: &str, answers: usize) -> Result<Answer, String> {
        Ok(Answer {
            rcode: rcode.into(),
            answers,
        })
    }

    #[test]
    fn server_answers_unknown_name_silence_and_off() {
        assert_eq!(
            server(Some(&outcome(answer("NOERROR", 1)))).status,
            Status::Pass
        );
        assert_eq!(
            server(Some(&outcome(answer("NXDOMAIN", 0)))).status,
            Status::Warn
        );
        assert_eq!(
            server(Some(&outcome(answer("NOERROR", 0)))).status,
            Status::Warn
        );
        let silent = server(Some(&outcome(Err("no answer within 2s".into()))));
        assert_eq!(silent.status, Status::Fail);
        assert!(silent.message.contains("169.254.96.16:53"));
        assert!(silent.fix.contains("edgemesh0"));
        assert_eq!(server(None).status, Status::Skip);
    }

    #[test]
    fn resolv_conf_lists_the_bridge_address_or_not() {
        let plan = crate::checks::tests::plan();
        let dns = plan.dns.as_ref();
        let path = Path::new("/etc/resolv.conf");
        let with = Ok("search x\nnameserver 169.254.96.16\nnameserver 192.0.2.53\n".to_owned());
        assert_eq!(resolv_conf(dns, path, &with).status, Status::Pass);
        let without = Ok("nameserver 192.0.2.53\n# nameserver 169.254.96.16\n".to_owned());
        let f = resolv_conf(dns, path, &without);
        assert_eq!(f.status, Status::Warn);
        assert!(f.message.contains("192.0.2.53"));
        assert!(f.fix.contains("clusterDNS"));
        assert_eq!(
            resolv_conf(dns, path, &Err("gone".into())).status,
            Status::Warn
        );
        assert_eq!(
            resolv_conf(dns, path, &Ok("\u{0}garbage".into())).status,
            Status::Warn
        );
        assert_eq!(resolv_conf(None, path, &with).status, Status::Skip);
    }
}
