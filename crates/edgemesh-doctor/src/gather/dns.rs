//! One A query to the node-local DNS server over UDP, retried once, within the timeout.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::plan::DnsPlan;

/// The question asked and what came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub server: SocketAddr,
    pub name: String,
    pub result: Result<Answer, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR, NXDOMAIN, ...
    pub rcode: String,
    pub answers: usize,
}

/// The name to ask for: `kubernetes.default` when the agent knows it, else the first service
/// of its snapshot with a ClusterIP, else `kubernetes.default` anyway.
pub fn name_to_ask(snapshot: Option<&str>, plan: &DnsPlan) -> String {
    let domain = &plan.cluster_domain;
    let fallback = format!("kubernetes.default.svc.{domain}");
    let Some(value) = snapshot.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    else {
        return fallback;
    };
    let Some(services) = value.get("services").and_then(|s| s.as_object()) else {
        return fallback;
    };
    if services.contains_key("default/kubernetes") {
        return fallback;
    }
    services
        .keys()
        .filter_map(|key| key.split_once('/'))
        .find(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .map_or(fallback.clone(), |(ns, name)| {
            format!("{name}.{ns}.svc.{domain}")
        })
}

pub fn ask(server: SocketAddr, name: &str, timeout: Duration) -> Outcome {
    Outcome {
        server,
        name: name.to_owned(),
        result: query(server, name, timeout),
    }
}

fn query(server: SocketAddr, name: &str, timeout: Duration) -> Result<Answer, String> {
    let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| format!("{name}: {e}"))?;
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(fqdn, RecordType::A));
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    // A plain blocking socket, as for the relay probes (`gather.rs`): the doctor asks as any
    // process on the node would, with no tokio runtime for a `SocketFactory` socket.
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    for _ in 0..2 {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        socket
            .set_read_timeout(Some(left / 2 + Duration::from_millis(1)))
            .map_err(|e| e.to_string())?;
        socket
            .send_to(&bytes, server)
            .map_err(|e| format!("send to {server}: {e}"))?;
        let n = match socket.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e) if is_worth_retrying(&e) => continue,
            Err(e) => return Err(format!("{server}: {e}")),
        };
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if reply.metadata.id != message.metadata.id {
            continue;
        }
        return Ok(Answer {
            rcode: rcode_name(reply.metadata.response_code),
            answers: reply.answers.len(),
        });
    }
    Err(format!("no answer within {timeout:?}"))
}

/// The name `dig` prints for a response code.
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        other => format!("{other:?}").to_uppercase(),
    }
}

/// A timeout, or a signal that interrupted the wait (CI saw EINTR once): ask again.
fn is_worth_retrying(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> DnsPlan {
        DnsPlan {
            addr: "169.254.96.16:53".parse().unwrap(),
            cluster_domain: "cluster.local".into(),
        }
    }

    #[test]
    fn the_name_asked_is_one_the_agent_knows() {
        let k = "kubernetes.default.svc.cluster.local";
        let cases = [
            (None, k),
            (Some("not json"), k),
            (Some(r#"{"services": {}}"#), k),
            (
                Some(r#"{"services": {"shop/web": {}, "default/kubernetes": {}}}"#),
                k,
            ),
            (
                Some(r#"{"services": {"shop/web": {}}}"#),
                "web.shop.svc.cluster.local",
            ),
            (Some(r#"{"services": {"bad": {}}}"#), k),
        ];
        for (snapshot, want) in cases {
            assert_eq!(name_to_ask(snapshot, &plan()), want, "{snapshot:?}");
        }
    }

    #[test]
    fn a_silent_server_is_a_bounded_failure() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let started = Instant::now();
        let outcome = ask(
            addr,
            "web.shop.svc.cluster.local",
            Duration::from_millis(300),
        );
        assert!(outcome.result.unwrap_err().contains("no answer"));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn an_answer_carries_its_rcode() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let responder = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let request = Message::from_vec(&buf[..n]).unwrap();
            let mut reply = Message::error_msg(
                request.metadata.id,
                request.metadata.op_code,
                ResponseCode::NXDomain,
            );
            reply.metadata.message_type = hickory_proto::op::MessageType::Response;
            server.send_to(&reply.to_vec().unwrap(), from).unwrap();
        });
        let outcome = ask(addr, "nope.cluster.local", Duration::from_secs(2));
        responder.join().unwrap();
        let answer = outcome.result.unwrap();
        assert_eq!(answer.rcode, "NXDOMAIN");
        assert_eq!(answer.answers, 0);
    }
}
