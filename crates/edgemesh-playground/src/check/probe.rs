//! Runs one check from inside the client node's namespace (the caller has entered it): real
//! sockets to the ClusterIP or to the name the node-local DNS returns.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use edgemesh_telemetry::client::get_with;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use super::catalog::{Check, Kind, Via};
use super::verdict::{self, Verdict};
use crate::agents::{ADMIN_ADDR, DNS_ADDR, SOCKS5_ADDR};
use crate::manifests::ServiceInfo;
use crate::pod::ws;

/// Bound of every connect, read and write.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs `check`; the calling thread must be in the client node's namespace.
pub(super) fn run(check: &Check) -> Verdict {
    let Some(svc) = &check.service else {
        return agent_ready();
    };
    let port = svc
        .ports
        .first()
        .map(|p| p.port)
        .ok_or("the service has no port")?;
    let ip = match check.via {
        Via::ClusterIp => svc.cluster_ip,
        Via::Dns => resolve(&svc.fqdn())?,
    };
    let addr = SocketAddr::new(IpAddr::V4(ip), port);
    let pods: Vec<&str> = svc.pods().iter().map(|p| p.name).collect();
    let host = format!("{}:{port}", svc.dns_short());
    let get = |n: usize| repeat_get(addr, &host, n, &[]);
    match check.kind {
        Kind::AgentReady => agent_ready(),
        Kind::Dns => dns(svc, ip),
        Kind::HttpReplica => verdict::replica(&get(1)?, &pods),
        Kind::HttpAllReplicas => all_replicas_within_rounds(get, 12, &pods),
        Kind::RoundRobin => verdict::round_robin(&get(8)?, &pods),
        Kind::Random => all_replicas_within_rounds(get, 16, &pods),
        Kind::SessionAffinity => verdict::sticky(&get(8)?, &pods),
        Kind::ConsistentHash => consistent_hash(addr, &host, &pods),
        Kind::TcpEcho => tcp_echo(addr),
        Kind::UdpEcho => udp_echo(addr),
        Kind::WebSocket => websocket(addr, &host, &pods),
        Kind::NotProxied => not_proxied(addr),
        Kind::Gateway => {
            let gateway = SocketAddr::from((check.from.ip, crate::agents::GATEWAY_PORT));
            let get = |n: usize| repeat_get(gateway, &gateway.to_string(), n, &[]);
            all_replicas_within_rounds(get, 12, &pods)
        }
        Kind::Socks5 => {
            let pod =
                super::catalog::remote_pod(svc, check.from).ok_or("no pod in another site")?;
            socks5_http(pod.node, pod.port, pod.name)
        }
    }
}

/// Rounds of requests a check may take to hear from every replica.
const REPLICA_ROUNDS: usize = 3;
const ROUND_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

/// Every replica answers within a few rounds of `n` requests. The first requests for a replica
/// in another LAN open its path through the tunnel (relay lookup, circuit, name proof); a dial
/// that fails meanwhile is served by another replica, as it should be, so one round may miss it.
fn all_replicas_within_rounds(
    get: impl Fn(usize) -> Result<Vec<String>, String>,
    n: usize,
    pods: &[&str],
) -> Verdict {
    let mut answers = Vec::new();
    for round in 0..REPLICA_ROUNDS {
        if round > 0 {
            std::thread::sleep(ROUND_PAUSE);
        }
        answers.extend(get(n)?);
        if verdict::all_replicas(&answers, pods).is_ok() {
            break;
        }
    }
    verdict::all_replicas(&answers, pods)
}

/// Through the agent's SOCKS5 proxy to `node:port` by name, then one HTTP GET whose answer must
/// name `pod`.
fn socks5_http(node: &str, port: u16, pod: &str) -> Verdict {
    let mut stream = connect(SOCKS5_ADDR)?;
    let io = |e: std::io::Error| format!("SOCKS5: {e}");
    stream.write_all(&[5, 1, 0]).map_err(io)?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).map_err(io)?;
    if choice != [5, 0] {
        return Err(format!("SOCKS5 method refused: {choice:?}"));
    }
    let mut request = vec![
        5,
        1,
        0,
        3,
        u8::try_from(node.len()).map_err(|e| e.to_string())?,
    ];
    request.extend_from_slice(node.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).map_err(io)?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).map_err(io)?;
    if head[1] != 0 {
        return Err(format!(
            "SOCKS5 CONNECT {node}:{port} refused with code {}",
            head[1]
        ));
    }
    let rest = match head[3] {
        1 => 6,
        4 => 18,
        _ => return Err(format!("SOCKS5 reply address type {}", head[3])),
    };
    stream.read_exact(&mut vec![0u8; rest]).map_err(io)?;
    let request = format!("GET / HTTP/1.0\r\nHost: {node}:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(io)?;
    if answer.contains(pod) {
        Ok(format!("{pod} answered through the tunnel"))
    } else {
        Err(format!(
            "expected {pod}, got {:?}",
            answer.lines().last().unwrap_or("")
        ))
    }
}

fn agent_ready() -> Verdict {
    match get_with(ADMIN_ADDR, "localhost", "/readyz", &[], IO_TIMEOUT) {
        Ok((200, _)) => Ok("/readyz 200".into()),
        Ok((status, body)) => Err(format!("/readyz {status}: {}", body.trim())),
        Err(e) => Err(e.to_string()),
    }
}

fn dns(svc: &ServiceInfo, resolved: Ipv4Addr) -> Verdict {
    if resolved == svc.cluster_ip {
        Ok(format!("{} A {resolved}", svc.fqdn()))
    } else {
        Err(format!(
            "{} resolved to {resolved}, want {}",
            svc.fqdn(),
            svc.cluster_ip
        ))
    }
}

/// `n` GETs, each on a new connection; the trimmed bodies.
fn repeat_get(
    addr: SocketAddr,
    host: &str,
    n: usize,
    headers: &[(&str, &str)],
) -> Result<Vec<String>, String> {
    (0..n)
        .map(|i| match get_with(addr, host, "/", headers, IO_TIMEOUT) {
            Ok((200, body)) => Ok(body.trim().to_owned()),
            Ok((status, body)) => Err(format!("request {}: HTTP {status} {}", i + 1, body.trim())),
            Err(e) => Err(format!("request {}: {e}", i + 1)),
        })
        .collect()
}

fn consistent_hash(addr: SocketAddr, host: &str, pods: &[&str]) -> Verdict {
    let mut per_user = Vec::new();
    for i in 0..12 {
        let user = format!("user-{i}");
        let answers = repeat_get(addr, host, 3, &[("x-user", &user)])?;
        per_user.push((user, answers));
    }
    verdict::consistent_hash(&per_user, pods)
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

fn tcp_echo(addr: SocketAddr) -> Verdict {
    let message = "hello edgemesh over TCP\n";
    let mut stream = connect(addr)?;
    stream
        .write_all(message.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("half-close: {e}"))?;
    let mut echoed = String::new();
    stream
        .read_to_string(&mut echoed)
        .map_err(|e| format!("read echo: {e}"))?;
    if echoed == message {
        Ok(format!("{} bytes echoed", echoed.len()))
    } else {
        Err(format!("echo {echoed:?}, sent {message:?}"))
    }
}

fn udp_echo(addr: SocketAddr) -> Verdict {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let message = b"hello edgemesh over UDP";
    let mut buf = [0u8; 2048];
    // UDP may lose a datagram: three tries.
    for _ in 0..3 {
        socket
            .send_to(message, addr)
            .map_err(|e| format!("send to {addr}: {e}"))?;
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            return if &buf[..n] == message {
                Ok(format!("echoed, reply from {from}"))
            } else {
                Err(format!("echo {:?}", String::from_utf8_lossy(&buf[..n])))
            };
        }
    }
    Err(format!("no echo from {addr} after 3 datagrams"))
}

fn websocket(addr: SocketAddr, host: &str, pods: &[&str]) -> Verdict {
    let mut stream = connect(addr)?;
    let reply = ws::client_round_trip(&mut stream, host, "hello")?;
    match reply.split_once(':') {
        Some((pod, "hello")) if pods.contains(&pod) => Ok(format!("{pod} echoed")),
        _ => Err(format!("unexpected reply {reply:?}")),
    }
}

/// Nothing must answer: without interception the ClusterIP leads nowhere.
fn not_proxied(addr: SocketAddr) -> Verdict {
    match get_with(addr, "filtered", "/", &[], Duration::from_secs(2)) {
        Ok((status, body)) => Err(format!(
            "answered (HTTP {status} {:?}): the agent proxies a filtered service",
            body.trim()
        )),
        Err(e) => Ok(format!("not intercepted ({e})")),
    }
}

/// An A query to the node-local DNS (UDP, three tries); the first address.
fn resolve(fqdn: &str) -> Result<Ipv4Addr, String> {
    let name = Name::from_ascii(format!("{fqdn}.")).map_err(|e| format!("{fqdn}: {e}"))?;
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, RecordType::A));
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    for _ in 0..3 {
        socket
            .send_to(&bytes, DNS_ADDR)
            .map_err(|e| format!("DNS {DNS_ADDR}: {e}"))?;
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let answer = Message::from_vec(&buf[..n]).map_err(|e| format!("DNS answer: {e}"))?;
        if answer.metadata.id != query.metadata.id {
            continue;
        }
        return answer
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .ok_or_else(|| {
                format!(
                    "DNS {DNS_ADDR}: no A record for {fqdn} ({})",
                    answer.metadata.response_code
                )
            });
    }
    Err(format!(
        "DNS {DNS_ADDR}: no answer for {fqdn} after 3 tries"
    ))
}
