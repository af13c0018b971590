//! Test helpers: a tiny upstream DNS server on 127.0.0.1:0, a client, and a Snapshot.
// Test-only helpers: a failure here is a failed test, so panicking is the right report.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edgemesh_model::fixtures::{cluster_ip_service, endpoint_slice};
use edgemesh_model::{BuildOptions, Catalog, Resource, ServiceKind, Snapshot, SourceId};
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;

pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the fake upstream behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Answer,
    /// Bound, reads queries, never answers.
    Silent,
}

/// An upstream DNS server knowing a few names; names in `truncate` get a TC answer over UDP.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Default, Clone)]
pub struct Zone {
    pub names: HashMap<String, Vec<IpAddr>>,
    pub truncate: Vec<String>,
    pub ttl: u32,
}

impl FakeUpstream {
    pub async fn start(zone: Zone, behaviour: Behaviour) -> Self {
        let any_port = "127.0.0.1:0".parse().unwrap();
        let (udp, tcp) =
            edgemesh_dns::server::bind_pair(&edgemesh_host::HostSockets::default(), any_port)
                .unwrap_or_else(|(protocol, e)| panic!("fake upstream {protocol}: {e}"));
        let addr = udp.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let zone = Arc::new(zone);
        let (z, q) = (zone.clone(), queries.clone());
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                q.fetch_add(1, Ordering::SeqCst);
                if behaviour == Behaviour::Silent {
                    continue;
                }
                if let Some(answer) = respond(&z, &buf[..n], true) {
                    let _ = udp.send_to(&answer, peer).await;
                }
            }
        });
        let (z, q) = (zone, queries.clone());
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                q.fetch_add(1, Ordering::SeqCst);
                let Ok(len) = stream.read_u16().await else {
                    continue;
                };
                let mut buf = vec![0u8; usize::from(len)];
                if stream.read_exact(&mut buf).await.is_err() || behaviour == Behaviour::Silent {
                    continue;
                }
                if let Some(answer) = respond(&z, &buf, false) {
                    let _ = stream.write_u16(answer.len() as u16).await;
                    let _ = stream.write_all(&answer).await;
                }
            }
        });
        Self {
            addr,
            queries,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// Closes the sockets: UDP queries then get "connection refused".
    pub async fn stop(self) {
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn query_count(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

fn respond(zone: &Zone, bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
    let request = Message::from_vec(bytes).ok()?;
    let query = request.queries.first()?.clone();
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_available = true;
    response.add_query(query.clone());
    let key = query.name().to_string().to_lowercase();
    if udp && zone.truncate.contains(&key) {
        response.metadata.truncation = true;
        return response.to_vec().ok();
    }
    match zone.names.get(&key) {
        None => response.metadata.response_code = ResponseCode::NXDomain,
        Some(ips) => {
            for ip in ips {
                let data = match (ip, query.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                response.add_answer(Record::from_rdata(query.name().clone(), zone.ttl, data));
            }
        }
    }
    response.to_vec().ok()
}

pub fn zone(entries: &[(&str, &[&str])], ttl: u32) -> Zone {
    Zone {
        names: entries
            .iter()
            .map(|(n, ips)| {
                (
                    n.to_string(),
                    ips.iter().map(|i| i.parse().unwrap()).collect(),
                )
            })
            .collect(),
        truncate: Vec::new(),
        ttl,
    }
}

pub fn query_message(name: &str, qtype: RecordType, edns: bool) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

/// The answer datagram, as received.
pub async fn ask_udp_raw(server: SocketAddr, message: &Message) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&message.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(CLIENT_TIMEOUT, socket.recv_from(&mut buf))
        .await
        .expect("no UDP answer in time")
        .unwrap();
    buf.truncate(n);
    buf
}

pub async fn ask_udp(server: SocketAddr, message: &Message) -> Message {
    let answer = Message::from_vec(&ask_udp_raw(server, message).await).unwrap();
    assert_eq!(answer.metadata.id, message.metadata.id);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    answer
}

pub async fn ask_tcp(server: SocketAddr, message: &Message) -> Message {
    let exchange = async {
        let mut stream = TcpStream::connect(server).await.unwrap();
        let bytes = message.to_vec().unwrap();
        stream.write_u16(bytes.len() as u16).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    };
    tokio::time::timeout(CLIENT_TIMEOUT, exchange)
        .await
        .expect("no TCP answer in time")
}

pub fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
        .map(|r| r.data.to_string())
        .collect()
}

/// ns/web (ClusterIP 10.96.0.10), ns/ext (ExternalName example.com) and ns/many (headless with
/// `endpoints` endpoints), built as version `version`.
pub fn snapshot(endpoints: u32, version: u64) -> Snapshot {
    let mut c = Catalog::new();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let web = cluster_ip_service("ns", "web", ip("10.96.0.10"), 80);
    c.upsert(SourceId::Manifests, Resource::Service(web.into()));
    let mut ext = cluster_ip_service("ns", "ext", ip("10.96.0.11"), 80);
    ext.kind = ServiceKind::ExternalName {
        external_name: "example.com".into(),
    };
    c.upsert(SourceId::Manifests, Resource::Service(ext.into()));
    let mut many = cluster_ip_service("ns", "many", ip("10.96.0.12"), 80);
    many.kind = ServiceKind::Headless;
    let ips: Vec<IpAddr> = (0..endpoints)
        .map(|i| IpAddr::from([10, 244, (i / 250) as u8, (i % 250 + 1) as u8]))
        .collect();
    let eps: Vec<(IpAddr, &str)> = ips.iter().map(|i| (*i, "n1")).collect();
    c.upsert(
        SourceId::Manifests,
        Resource::EndpointSlice(endpoint_slice(&many, &eps, 80).into()),
    );
    c.upsert(SourceId::Manifests, Resource::Service(many.into()));
    c.build_snapshot(BuildOptions {
        version,
        ..BuildOptions::default()
    })
    .0
}

/// A published Snapshot (version > 0) without any service.
pub fn empty_snapshot(version: u64) -> Snapshot {
    Catalog::new()
        .build_snapshot(BuildOptions {
            version,
            ..BuildOptions::default()
        })
        .0
}
