//! A gateway in this process on loopback, with backends that say who they are.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgemesh_gateway::{Backends, Identity, Shared};
use edgemesh_lb::{ConsistentHashConfig, LoadBalancer};
use edgemesh_model::fixtures::{cluster_ip_service, endpoint_slice};
use edgemesh_model::ingress::*;
use edgemesh_model::{
    BuildOptions, Catalog, ObjectKey, Resource, Snapshot, SnapshotCell, SourceId,
};
use edgemesh_proxy::DirectDialer;
use edgemesh_proxy::connect::DialLimits;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

/// An HTTP/1.1 and h2c backend at `addr` answering `name path host version` for every request.
pub async fn backend(addr: SocketAddr, name: &'static str) {
    serve_http(addr, move |request| async move {
        let host = request
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let host = request.uri().authority().map_or(host, |a| a.to_string());
        let body = format!(
            "{name} {} {host} {:?}\n",
            request.uri().path(),
            request.version()
        );
        hyper::Response::new(Full::new(Bytes::from(body)))
    })
    .await;
}

/// Serves HTTP/1.1 and h2c on `addr` (bound before this returns), every request answered by
/// `answer`, until the test's runtime ends.
pub async fn serve_http<F, Fut>(addr: SocketAddr, answer: F)
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answering = answer(request);
                    async move { Ok::<_, Infallible>(answering.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
            });
        }
    });
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Service `ns/name` with ClusterIP `cluster_ip`, port `port`, endpoints `ips` at `target`.
pub fn service(
    catalog: &mut Catalog,
    name: &str,
    cluster_ip: [u8; 4],
    port: u16,
    ips: &[[u8; 4]],
    target: u16,
) {
    service_with_port_name(catalog, name, "http", cluster_ip, port, ips, target);
}

/// [`service`] whose port is named `port_name` (`grpc` declares HTTP/2 the way Istio reads it).
pub fn service_with_port_name(
    catalog: &mut Catalog,
    name: &str,
    port_name: &str,
    cluster_ip: [u8; 4],
    port: u16,
    ips: &[[u8; 4]],
    target: u16,
) {
    let mut spec = cluster_ip_service("default", name, IpAddr::from(cluster_ip), port);
    spec.ports[0].name = port_name.into();
    let ips: Vec<(IpAddr, &str)> = ips.iter().map(|ip| (IpAddr::from(*ip), "node-a")).collect();
    let mut slice = endpoint_slice(&spec, &ips, target);
    slice.subsets[0].ports[0].name = port_name.into();
    catalog.upsert(SourceId::Manifests, Resource::Service(spec.into()));
    catalog.upsert(SourceId::Manifests, Resource::EndpointSlice(slice.into()));
}

pub fn snapshot(catalog: &Catalog, version: u64) -> Arc<Snapshot> {
    let options = BuildOptions {
        version,
        ..BuildOptions::default()
    };
    Arc::new(catalog.build_snapshot(options).0)
}

/// A running gateway and the sender that feeds it Snapshots.
pub struct Running {
    pub shared: Arc<Shared>,
    pub updates: watch::Sender<Arc<Snapshot>>,
    pub cell: Arc<SnapshotCell>,
}

impl Running {
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        self.cell.store(Arc::clone(&snapshot));
        self.updates.send_replace(snapshot);
    }
}

/// Starts a gateway listening on 127.0.0.1 with EdgeMesh's default identity.
pub async fn gateway(snapshot: Arc<Snapshot>) -> Running {
    let cell = Arc::new(SnapshotCell::new((*snapshot).clone()));
    let balancer = Arc::new(LoadBalancer::new(ConsistentHashConfig::default()).unwrap());
    let dialer = Arc::new(DirectDialer::new(Arc::new(
        edgemesh_host::HostSockets::default(),
    )));
    let limits = DialLimits {
        attempts: 3,
        timeout: Duration::from_secs(2),
    };
    let backends = Backends::new(Arc::clone(&cell), balancer, dialer, limits);
    let shared = Arc::new(Shared::new(
        backends,
        edgemesh_gateway::metrics::Metrics::default(),
    ));
    let (updates, rx) = watch::channel(snapshot);
    let addresses = || vec![IpAddr::from([127, 0, 0, 1])];
    tokio::spawn(edgemesh_gateway::run(
        Arc::clone(&shared),
        Identity::edgemesh_default(),
        rx,
        addresses,
    ));
    // The first table and listeners are in place once the task ran once.
    for _ in 0..100 {
        if shared
            .listeners
            .lock()
            .unwrap()
            .addresses()
            .next()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Running {
        shared,
        updates,
        cell,
    }
}

/// EdgeMesh's example Gateway (`examples/hostname-lb-random-gateway.yaml`) on `port`.
pub fn edgemesh_gateway(port: u16, hosts: &[&str], tls: Option<ServerTls>) -> Resource {
    Resource::Gateway(
        GatewaySpec {
            key: ObjectKey::new("default", "edgemesh-gateway"),
            selector: BTreeMap::from([("kubeedge".into(), "edgemesh-gateway".into())]),
            servers: vec![ServerSpec {
                port,
                port_name: "http-0".into(),
                protocol: ServerProtocol::Http,
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                tls,
            }],
        }
        .into(),
    )
}

pub fn destination(host: &str, port: u16, weight: u32) -> DestinationSpec {
    DestinationSpec {
        host: host.into(),
        port: Some(port),
        subset: None,
        weight,
    }
}

pub fn http_route(matches: Vec<HttpMatchSpec>, route: Vec<DestinationSpec>) -> HttpRouteSpec {
    HttpRouteSpec {
        matches,
        route,
        ..HttpRouteSpec::default()
    }
}

pub fn prefix(p: &str) -> HttpMatchSpec {
    HttpMatchSpec {
        uri: Some(StringMatchSpec::Prefix(p.into())),
        ..HttpMatchSpec::default()
    }
}

pub fn virtual_service(name: &str, hosts: &[&str], http: Vec<HttpRouteSpec>) -> VirtualServiceSpec {
    VirtualServiceSpec {
        key: ObjectKey::new("default", name),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        gateways: vec!["edgemesh-gateway".into()],
        http,
        tcp: vec![],
        tls: vec![],
    }
}

/// Runs curl with `args`; its stdout.
pub fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs (apt install curl)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
