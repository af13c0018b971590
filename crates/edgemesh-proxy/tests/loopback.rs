//! Component tests on loopback: a real proxy, real sockets, an injected original destination.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{WEB, echo_server, read_to_end, refused_addr, start_proxy};
use edgemesh_model::{HashKey, LbPolicy};
use edgemesh_proxy::testing::FirstAvailable;
use edgemesh_proxy::{Proxy, ProxyConfig, RelayMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MODES: [RelayMode; 3] = [
    RelayMode::Adaptive,
    RelayMode::Splice,
    RelayMode::Copy { buffer: 16 * 1024 },
];

fn config(relay: RelayMode) -> ProxyConfig {
    ProxyConfig {
        relay,
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn data_round_trips_through_the_proxy() {
    for mode in MODES {
        let balancer = Arc::new(FirstAvailable::new(vec![echo_server().await]));
        let (proxy, addr) = start_proxy(config(mode), LbPolicy::RoundRobin, balancer, WEB).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let (mut r, mut w) = client.split();
        let send = async {
            w.write_all(&payload).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut echoed = Vec::new();
        let (_, read) = tokio::join!(send, r.read_to_end(&mut echoed));
        read.unwrap();
        assert_eq!(echoed, payload, "{mode:?}");
        let m = proxy.metrics().snapshot();
        assert_eq!((m.accepted, m.routed), (1, 1), "{mode:?}");
        assert_eq!(m.bytes_client_to_upstream, payload.len() as u64, "{mode:?}");
    }
}

/// Client half-closes first: the backend sees EOF and can still answer.
#[tokio::test]
async fn client_half_close_keeps_the_reply_flowing() {
    for mode in MODES {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let balancer = Arc::new(FirstAvailable::new(vec![backend.local_addr().unwrap()]));
        tokio::spawn(async move {
            let (mut s, _) = backend.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(format!("got {} bytes", got.len()).as_bytes())
                .await
                .unwrap();
        });
        let (_, addr) = start_proxy(config(mode), LbPolicy::RoundRobin, balancer, WEB).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(
            read_to_end(&mut client).await.unwrap(),
            b"got 7 bytes",
            "{mode:?}"
        );
    }
}

/// Backend half-closes first: the client sees EOF and can still send.
#[tokio::test]
async fn upstream_half_close_keeps_the_request_flowing() {
    for mode in MODES {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let balancer = Arc::new(FirstAvailable::new(vec![backend.local_addr().unwrap()]));
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut s, _) = backend.accept().await.unwrap();
            s.write_all(b"banner").await.unwrap();
            s.shutdown().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            tx.send(got).unwrap();
        });
        let (_, addr) = start_proxy(config(mode), LbPolicy::RoundRobin, balancer, WEB).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut banner = vec![0u8; 6];
        client.read_exact(&mut banner).await.unwrap();
        assert_eq!(
            client.read(&mut [0u8; 8]).await.unwrap(),
            0,
            "EOF after banner"
        );
        client.write_all(b"late data").await.unwrap();
        client.shutdown().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"late data", "{mode:?}");
    }
}

/// Expects the proxy to close `client` with a reset or an EOF at once, not after a dial timeout
/// (seconds): the bound leaves room for a loaded CI machine.
async fn assert_fast_close(mut client: TcpStream) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(FAST_CLOSE, client.read(&mut buf)).await;
    let read = read.unwrap_or_else(|_| panic!("client was not closed within {FAST_CLOSE:?}"));
    assert!(
        matches!(&read, Ok(0)) || matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "expected EOF or ECONNRESET, got {read:?}"
    );
}

/// Well below the proxy's dial timeout (5 s), well above a scheduling hiccup.
const FAST_CLOSE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn no_endpoint_resets_the_client_at_once() {
    let (proxy, addr) = splice_proxy(vec![], WEB).await;
    assert_fast_close(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(proxy.metrics().snapshot().no_endpoint, 1);
}

#[tokio::test]
async fn unknown_frontend_is_closed_at_once() {
    let (proxy, addr) = splice_proxy(vec![echo_server().await], "10.96.0.99:81").await;
    assert_fast_close(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(proxy.metrics().snapshot().no_route, 1);
}

#[tokio::test]
async fn all_endpoints_refusing_resets_the_client() {
    let (proxy, addr) = splice_proxy(vec![refused_addr().await, refused_addr().await], WEB).await;
    assert_fast_close(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(proxy.metrics().snapshot().dial_failures, 2);
}

#[tokio::test]
async fn a_refusing_endpoint_is_retried_on_the_next() {
    let (proxy, addr) = splice_proxy(vec![refused_addr().await, echo_server().await], WEB).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"ping").await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(read_to_end(&mut client).await.unwrap(), b"ping");
    let m = proxy.metrics().snapshot();
    assert_eq!((m.dial_failures, m.retries), (1, 1));
}

#[tokio::test]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    let idle = Duration::from_millis(300);
    let cfg = ProxyConfig {
        tcp_idle_timeout: Some(idle),
        ..config(RelayMode::Splice)
    };
    let balancer = Arc::new(FirstAvailable::new(vec![echo_server().await]));
    let (proxy, addr) = start_proxy(cfg, LbPolicy::RoundRobin, balancer, WEB).await;
    // Busy: a byte every 100 ms for 900 ms outlives three idle periods.
    let mut busy = TcpStream::connect(addr).await.unwrap();
    for _ in 0..9 {
        busy.write_all(b"x").await.unwrap();
        busy.read_exact(&mut [0u8; 1]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(busy);
    // Quiet: closed after about the idle period.
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    assert_eq!(read_to_end(&mut quiet).await.unwrap(), b"");
    let waited = start.elapsed();
    assert!(
        waited >= idle - Duration::from_millis(50) && waited < idle * 3,
        "{waited:?}"
    );
    assert_eq!(proxy.metrics().snapshot().idle_closed, 1);
}

/// A header-hash policy on an HTTP port: the header reaches the balancer and the request
/// bytes reach the backend untouched.
#[tokio::test]
async fn http_header_feeds_the_balancer_and_bytes_pass_untouched() {
    let policy = LbPolicy::ConsistentHash(HashKey::HttpHeader("x-user".into()));
    let cases: [(&[u8], Option<&str>); 3] = [
        (
            b"GET / HTTP/1.1\r\nHost: web\r\nX-User: alice\r\n\r\n",
            Some("alice"),
        ),
        (
            b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
            None,
        ),
        (b"\x16\x03\x01 not http at all", None),
    ];
    for (request, want) in cases {
        let balancer = Arc::new(FirstAvailable::new(vec![echo_server().await]));
        let (_, addr) = start_proxy(
            config(RelayMode::Splice),
            policy.clone(),
            balancer.clone(),
            WEB,
        )
        .await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(request).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut client).await.unwrap(), request);
        assert_eq!(balancer.seen_headers(), vec![want.map(String::from)]);
    }
}

/// A client that sends a partial head and then waits is not held longer than the sniff
/// timeout: it is balanced on its source IP and its bytes still arrive.
#[tokio::test]
async fn slow_http_head_falls_back_after_the_timeout() {
    let policy = LbPolicy::ConsistentHash(HashKey::HttpHeader("x-user".into()));
    let mut cfg = config(RelayMode::Splice);
    cfg.http_head.timeout = Duration::from_millis(200);
    let balancer = Arc::new(FirstAvailable::new(vec![echo_server().await]));
    let (_, addr) = start_proxy(cfg, policy, balancer.clone(), WEB).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"GET / HTTP/1.1\r\nX-Us").await.unwrap();
    let mut echoed = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(1), client.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"GET / HTTP/1.1\r\nX-Us");
    assert_eq!(balancer.seen_headers(), vec![None]);
}

/// A splicing round-robin proxy over `backends` whose clients all asked for `original_dst`.
async fn splice_proxy(backends: Vec<SocketAddr>, original_dst: &str) -> (Proxy, SocketAddr) {
    let balancer = Arc::new(FirstAvailable::new(backends));
    start_proxy(
        config(RelayMode::Splice),
        LbPolicy::RoundRobin,
        balancer,
        original_dst,
    )
    .await
}

/// A dialer that waits its turn before a direct connect, as a tunnel open waits for one of its
/// peer's stream slots.
struct Queued {
    wait: Duration,
    inner: edgemesh_proxy::DirectDialer,
}

impl edgemesh_proxy::Dialer for Queued {
    fn dial<'a>(
        &'a self,
        backend: &'a edgemesh_model::Backend,
        frontend: &'a edgemesh_model::Frontend,
        connect_timeout: Duration,
    ) -> futures::future::BoxFuture<'a, std::io::Result<edgemesh_proxy::Upstream>> {
        Box::pin(async move {
            tokio::time::sleep(self.wait).await;
            self.inner.dial(backend, frontend, connect_timeout).await
        })
    }
}

/// The dialer bounds a dial's own work by the connect timeout; the proxy adds no bound over the
/// whole, so a dial that queued longer than the connect timeout still connects (issue #17: a
/// burst of tunnel opens failed because the wait for a slot counted).
#[tokio::test]
async fn a_dial_that_queues_past_the_connect_timeout_still_connects() {
    let config = ProxyConfig {
        connect_timeout: Duration::from_millis(100),
        ..ProxyConfig::default()
    };
    let balancer = Arc::new(FirstAvailable::new(vec![echo_server().await]));
    let dialer = Arc::new(Queued {
        wait: Duration::from_millis(400),
        inner: edgemesh_proxy::DirectDialer::new(Arc::new(edgemesh_host::HostSockets::default())),
    });
    let dst: SocketAddr = WEB.parse().unwrap();
    let od = Arc::new(move |_: &TcpStream| Ok(dst));
    let snapshots = common::snapshots(LbPolicy::RoundRobin);
    let proxy = Proxy::with_original_dst(config, snapshots, balancer, dialer, od);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = proxy.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await });

    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got)).await;
    assert!(matches!(read, Ok(Ok(4))), "{read:?}");
    assert_eq!(&got, b"ping");
    assert_eq!(proxy.metrics().snapshot().dial_failures, 0);
}
