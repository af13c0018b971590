//! Shared set-up of the proxy tests: a snapshot with one service, loopback servers, a proxy
//! with an injected original destination.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod netns;

use std::net::SocketAddr;
use std::sync::Arc;

use edgemesh_host::HostSockets;
use edgemesh_lb::Balancer;
use edgemesh_model::fixtures::cluster_ip_service;
use edgemesh_model::{
    BuildOptions, Catalog, DestinationRuleSpec, LbPolicy, ObjectKey, Resource, SnapshotCell,
    SourceId,
};
use edgemesh_proxy::{DirectDialer, Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The ClusterIP frontend of the test service (never dialed on the host: it is only data).
pub const WEB: &str = "10.96.0.10:80";

/// A snapshot cell holding `web/ns` at [`WEB`] with a port named `http` and `policy`.
pub fn snapshots(policy: LbPolicy) -> Arc<SnapshotCell> {
    let mut catalog = Catalog::new();
    let web: SocketAddr = WEB.parse().unwrap();
    catalog.upsert(
        SourceId::Manifests,
        Resource::Service(cluster_ip_service("ns", "web", web.ip(), web.port()).into()),
    );
    catalog.upsert(
        SourceId::Manifests,
        Resource::DestinationRule(
            DestinationRuleSpec {
                key: ObjectKey::new("ns", "web"),
                policy,
                host: String::new(),
                subsets: Vec::new(),
            }
            .into(),
        ),
    );
    let (snapshot, _) = catalog.build_snapshot(BuildOptions::default());
    Arc::new(SnapshotCell::new(snapshot))
}

/// A proxy on 127.0.0.1:0 that believes every connection was sent to `original_dst`.
pub async fn start_proxy(
    config: ProxyConfig,
    policy: LbPolicy,
    balancer: Arc<dyn Balancer>,
    original_dst: &str,
) -> (Proxy, SocketAddr) {
    let dst: SocketAddr = original_dst.parse().unwrap();
    let dialer = Arc::new(DirectDialer::new(Arc::new(HostSockets::default())));
    let od = Arc::new(move |_: &TcpStream| Ok(dst));
    let proxy = Proxy::with_original_dst(config, snapshots(policy), balancer, dialer, od);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = proxy.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await });
    (proxy, addr)
}

/// An echo server: writes back everything, half-closes when the client does.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Reads until EOF, bounded by two seconds.
pub async fn read_to_end(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let read = stream.read_to_end(&mut out);
    tokio::time::timeout(std::time::Duration::from_secs(2), read)
        .await
        .expect("peer did not close within 2 s")?;
    Ok(out)
}
