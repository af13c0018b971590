//! The server on 127.0.0.1:0 against a fake upstream: forwarding, cache, serve-stale, SERVFAIL
//! bounds, TCP retry on truncation, Snapshot changes, cacheDNS mode.

// Test helpers below panic on failure on purpose: that is the test failing.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgemesh_dns::{DnsConfig, DnsError, DnsMetrics, DnsServer};
use edgemesh_model::SnapshotCell;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use support::*;
use tokio::sync::oneshot;

struct Running {
    addr: SocketAddr,
    snapshots: Arc<SnapshotCell>,
    metrics: Arc<DnsMetrics>,
    _stop: oneshot::Sender<()>,
}

async fn start(upstreams: Vec<SocketAddr>, tweak: impl FnOnce(&mut DnsConfig)) -> Running {
    let mut config = DnsConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        upstreams,
        upstream_timeout: Duration::from_millis(500),
        ..DnsConfig::default()
    };
    tweak(&mut config);
    let snapshots = Arc::new(SnapshotCell::new(snapshot(3, 1)));
    let metrics = Arc::new(DnsMetrics::default());
    let server = DnsServer::bind(&config, snapshots.clone(), metrics.clone())
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        snapshots,
        metrics,
        _stop: stop,
    }
}

#[tokio::test]
async fn forwards_and_caches_external_names() {
    let upstream = FakeUpstream::start(
        zone(&[("example.org.", &["192.0.2.7"])], 300),
        Behaviour::Answer,
    )
    .await;
    let dns = start(vec![upstream.addr], |_| {}).await;
    for _ in 0..2 {
        let answer = ask_udp(
            dns.addr,
            &query_message("example.org.", RecordType::A, true),
        )
        .await;
        assert_eq!(addresses(&answer), vec!["192.0.2.7"]);
        assert!(answer.metadata.recursion_available);
        assert!(answer.answers[0].ttl <= 30, "cacheTTL caps the TTL");
    }
    let nx = ask_udp(
        dns.addr,
        &query_message("nope.example.org.", RecordType::A, false),
    )
    .await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        upstream.query_count(),
        2,
        "the second example.org query is a cache hit"
    );
    let m = dns.metrics.snapshot();
    assert_eq!((m.queries, m.cache_hits, m.forwarded), (3, 1, 2));
    assert_eq!((m.rcode_noerror, m.rcode_nxdomain), (2, 1));
}

#[tokio::test]
async fn serves_stale_when_the_upstream_is_gone_and_servfails_unseen_names_quickly() {
    let upstream = FakeUpstream::start(
        zone(&[("example.org.", &["192.0.2.7"])], 300),
        Behaviour::Answer,
    )
    .await;
    // cacheTTL 0: every entry is expired at once, so only serve-stale can answer later.
    let dns = start(vec![upstream.addr], |c| c.cache_ttl = Duration::ZERO).await;
    let q = query_message("example.org.", RecordType::A, true);
    assert_eq!(addresses(&ask_udp(dns.addr, &q).await), vec!["192.0.2.7"]);
    upstream.stop().await;

    let stale = ask_udp(dns.addr, &q).await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&stale), vec!["192.0.2.7"]);
    assert_eq!(
        stale.answers[0].ttl, 30,
        "stale answers carry the stale TTL"
    );

    let started = Instant::now();
    let unseen = ask_udp(
        dns.addr,
        &query_message("never.example.org.", RecordType::A, true),
    )
    .await;
    assert_eq!(unseen.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let m = dns.metrics.snapshot();
    assert_eq!(
        (m.stale_answers, m.upstream_failures, m.rcode_servfail),
        (1, 2, 1)
    );
}

#[tokio::test]
async fn a_silent_upstream_costs_at_most_the_upstream_timeout() {
    let upstream = FakeUpstream::start(zone(&[], 300), Behaviour::Silent).await;
    let dns = start(vec![upstream.addr], |_| {}).await;
    let started = Instant::now();
    let answer = ask_udp(
        dns.addr,
        &query_message("example.org.", RecordType::A, false),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[tokio::test]
async fn truncated_upstream_answers_are_retried_over_tcp() {
    let many: Vec<String> = (1..=40).map(|i| format!("198.51.100.{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut z = zone(&[("big.example.", &many)], 300);
    z.truncate.push("big.example.".into());
    let upstream = FakeUpstream::start(z, Behaviour::Answer).await;
    let dns = start(vec![upstream.addr], |_| {}).await;
    let answer = ask_tcp(
        dns.addr,
        &query_message("big.example.", RecordType::A, false),
    )
    .await;
    assert_eq!(addresses(&answer).len(), 40);
    assert_eq!(dns.metrics.snapshot().tcp_retries, 1);
}

#[tokio::test]
async fn large_cluster_answers_truncate_over_udp_and_complete_over_tcp() {
    let dns = start(vec![], |_| {}).await;
    dns.snapshots.store(Arc::new(snapshot(100, 2)));
    let q = query_message("many.ns.svc.cluster.local.", RecordType::A, false);
    let udp = ask_udp(dns.addr, &q).await;
    assert!(udp.metadata.truncation);
    assert!(addresses(&udp).len() < 100);
    assert_eq!(addresses(&ask_tcp(dns.addr, &q).await).len(), 100);
}

/// A truncated UDP answer is a complete message: hickory's encoder leaves the bytes of the
/// record that did not fit after the message end (12 junk bytes without EDNS).
#[tokio::test]
async fn truncated_udp_answers_end_where_their_last_record_ends() {
    let dns = start(vec![], |_| {}).await;
    dns.snapshots.store(Arc::new(snapshot(100, 2)));
    for edns in [false, true] {
        let q = query_message("many.ns.svc.cluster.local.", RecordType::A, edns);
        let raw = ask_udp_raw(dns.addr, &q).await;
        let limit = if edns { 1232 } else { 512 };
        assert!(raw.len() <= limit, "edns {edns}: {} bytes", raw.len());
        let mut decoder = BinDecoder::new(&raw);
        let answer = Message::read(&mut decoder).unwrap();
        assert!(answer.metadata.truncation, "edns {edns}");
        let junk = decoder.len();
        assert_eq!(
            junk,
            0,
            "edns {edns}: junk after the message {:?} (counts {:?}, len {})",
            &raw[raw.len() - junk..],
            answer.answers.len(),
            raw.len()
        );
    }
}

/// hickory reads a UDP datagram into 4,096 bytes: a 60,000-byte query arrived cut to its first
/// 4,096 bytes and was answered NOERROR, although oversized queries are refused (docs/dns.md).
#[tokio::test]
async fn oversized_queries_get_formerr_over_udp_too() {
    let dns = start(vec![], |_| {}).await;
    let q = query_message("web.ns.svc.cluster.local.", RecordType::A, false);
    let mut bytes = q.to_vec().unwrap();
    bytes.resize(60_000, 0);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&bytes, dns.addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
}

#[tokio::test]
async fn answers_follow_the_snapshot_immediately() {
    let dns = start(vec![], |_| {}).await;
    let q = query_message("web.ns.svc.cluster.local.", RecordType::A, true);
    let answer = ask_udp(dns.addr, &q).await;
    assert_eq!(addresses(&answer), vec!["10.96.0.10"]);
    assert!(answer.metadata.authoritative);
    assert!(answer.edns.is_some(), "EDNS is echoed");
    dns.snapshots.store(Arc::new(empty_snapshot(2)));
    let gone = ask_udp(dns.addr, &q).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
    assert!(gone.edns.is_some());
    let plain = ask_udp(
        dns.addr,
        &query_message("web.ns.svc.cluster.local.", RecordType::A, false),
    )
    .await;
    assert!(plain.edns.is_none(), "no OPT without one in the request");
}

#[tokio::test]
async fn external_name_is_chased_through_the_upstream() {
    let upstream = FakeUpstream::start(
        zone(&[("example.com.", &["203.0.113.5"])], 60),
        Behaviour::Answer,
    )
    .await;
    let dns = start(vec![upstream.addr], |_| {}).await;
    let answer = ask_udp(
        dns.addr,
        &query_message("ext.ns.svc.cluster.local.", RecordType::A, true),
    )
    .await;
    assert_eq!(answer.answers[0].data.to_string(), "example.com.");
    assert_eq!(addresses(&answer), vec!["203.0.113.5"]);
}

#[tokio::test]
async fn cache_dns_mode_forwards_unknown_cluster_names() {
    let upstream = FakeUpstream::start(
        zone(&[("cloud.ns.svc.cluster.local.", &["10.96.5.5"])], 30),
        Behaviour::Answer,
    )
    .await;
    let off = start(vec![upstream.addr], |_| {}).await;
    let q = query_message("cloud.ns.svc.cluster.local.", RecordType::A, true);
    assert_eq!(
        ask_udp(off.addr, &q).await.metadata.response_code,
        ResponseCode::NXDomain
    );
    let on = start(vec![upstream.addr], |c| c.cache_dns_mode = true).await;
    assert_eq!(addresses(&ask_udp(on.addr, &q).await), vec!["10.96.5.5"]);
    let local = query_message("web.ns.svc.cluster.local.", RecordType::A, true);
    assert_eq!(
        addresses(&ask_udp(on.addr, &local).await),
        vec!["10.96.0.10"]
    );
    assert_eq!(
        upstream.query_count(),
        1,
        "names in the Snapshot stay local"
    );
}

#[tokio::test]
async fn ptr_queries_for_cluster_ips_are_answered_and_others_forwarded() {
    let dns = start(vec![], |_| {}).await;
    let q = query_message("10.0.96.10.in-addr.arpa.", RecordType::PTR, true);
    let answer = ask_udp(dns.addr, &q).await;
    assert_eq!(
        answer.answers[0].data.to_string(),
        "web.ns.svc.cluster.local."
    );
    let other = ask_udp(
        dns.addr,
        &query_message("1.2.0.192.in-addr.arpa.", RecordType::PTR, true),
    )
    .await;
    assert_eq!(
        other.metadata.response_code,
        ResponseCode::ServFail,
        "no upstreams configured"
    );
}

#[tokio::test]
async fn wildcard_and_missing_listen_addresses_are_refused() {
    let cell = Arc::new(SnapshotCell::default());
    let metrics = Arc::new(DnsMetrics::default());
    for listen in [
        vec!["0.0.0.0:53".parse().unwrap()],
        vec!["[::]:0".parse().unwrap()],
        vec![],
    ] {
        let config = DnsConfig {
            listen,
            ..DnsConfig::default()
        };
        let err = DnsServer::bind(&config, cell.clone(), metrics.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(err, DnsError::WildcardListen(_) | DnsError::NoListenAddress),
            "{err}"
        );
    }
    let bad_domain = DnsConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        cluster_domain: "a..b".into(),
        ..DnsConfig::default()
    };
    let err = DnsServer::bind(&bad_domain, cell, metrics)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("a..b"), "{err}");
}

#[tokio::test]
async fn queries_beyond_the_inflight_bound_fail_at_once() {
    let upstream = FakeUpstream::start(zone(&[], 300), Behaviour::Silent).await;
    let dns = start(vec![upstream.addr], |c| c.max_upstream_inflight = 1).await;
    let slow = tokio::spawn(async move {
        ask_udp(dns.addr, &query_message("a.example.", RecordType::A, false)).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let busy = ask_udp(dns.addr, &query_message("b.example.", RecordType::A, false)).await;
    assert_eq!(busy.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        slow.await.unwrap().metadata.response_code,
        ResponseCode::ServFail
    );
}

#[tokio::test]
async fn before_the_first_snapshot_cluster_names_get_servfail_not_nxdomain() {
    let dns = start(vec![], |_| {}).await;
    dns.snapshots
        .store(Arc::new(edgemesh_model::Snapshot::empty()));
    let q = query_message("web.ns.svc.cluster.local.", RecordType::A, true);
    assert_eq!(
        ask_udp(dns.addr, &q).await.metadata.response_code,
        ResponseCode::ServFail
    );
}
