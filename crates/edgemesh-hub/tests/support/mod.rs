//! Component-test harness: the test kit's apiserver double behind a relay the test can cut (the
//! "link"), an in-process hub on loopback, and a small HTTP client that sets User-Agent and token.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgemesh_hub::{HealthConfig, Hub, HubConfig, StatusHandle};
use edgemesh_testkit::apiserver::ApiServer;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP relay to `target` on a fixed loopback port; `cut` refuses and drops every connection
/// (like a link going down), `restore` accepts again on the same port.
pub struct Relay {
    pub addr: SocketAddr,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            target,
            tasks: Arc::default(),
            frozen: tokio::sync::watch::Sender::new(false),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks) = (self.target, Arc::clone(&self.tasks));
        let frozen = self.frozen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut frozen = frozen.subscribe();
                let conn = tokio::spawn(async move {
                    if *frozen.borrow() {
                        return std::future::pending::<()>().await;
                    }
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        let froze = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => false,
                            _ = frozen.wait_for(|f| *f) => true,
                        };
                        if froze {
                            // Hold both ends open and pass nothing, like a link that drops packets.
                            std::future::pending::<()>().await;
                        }
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// A silent loss: connections stay open (new ones are accepted) but nothing passes, so the
    /// hub sees no error, only silence.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub async fn restore(&self) {
        // The aborted listener's socket closes asynchronously; retry briefly (bounded).
        for _ in 0..50 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("cannot rebind the relay on {}", self.addr);
    }
}

/// A running in-process hub.
pub struct TestHub {
    pub addr: SocketAddr,
    pub status: StatusHandle,
    /// What the hub registered: its `/metrics`.
    pub registry: prometheus_client::registry::Registry,
    task: JoinHandle<()>,
}

impl TestHub {
    /// The hub's metrics as `/metrics` would serve them.
    pub fn metrics(&self) -> String {
        let reply = edgemesh_telemetry::metrics::encode(&self.registry);
        String::from_utf8(reply.body).unwrap()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn fast_health() -> HealthConfig {
    HealthConfig {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(500),
        failure_threshold: 1,
        success_threshold: 1,
        path: "/version".into(),
    }
}

pub fn config(upstream: &str, cache_dir: &Path, agents: &str) -> HubConfig {
    HubConfig {
        secure_addr: None,
        insecure_addr: Some("127.0.0.1:0".parse().unwrap()),
        server_addrs: vec![upstream.to_string()],
        cache_dir: cache_dir.to_path_buf(),
        cache_agents: agents.to_string(),
        config_poll_interval: Duration::from_millis(200),
        health: fast_health(),
        connect_timeout: Duration::from_millis(500),
        bookmark_interval: Duration::from_millis(200),
        ..HubConfig::default()
    }
}

/// The apiserver double (with [`apiserver`]'s objects) behind a cuttable relay, and a hub caching
/// for `agents` in front of it; `tune` adjusts the hub's config first.
pub struct LinkedHub {
    pub api: ApiServer,
    pub relay: Relay,
    pub hub: TestHub,
    /// `http://` and the hub's address.
    pub base: String,
    pub cache: tempfile::TempDir,
}

pub async fn linked_hub(agents: &str, tune: impl FnOnce(&mut HubConfig)) -> LinkedHub {
    let api = apiserver();
    let relay = Relay::start(api.addr()).await;
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(&format!("http://{}", relay.addr), cache.path(), agents);
    tune(&mut cfg);
    let hub = start_hub(cfg).await;
    let base = format!("http://{}", hub.addr);
    LinkedHub {
        api,
        relay,
        hub,
        base,
        cache,
    }
}

pub async fn start_hub(config: HubConfig) -> TestHub {
    let mut registry = prometheus_client::registry::Registry::default();
    let hub = Hub::start(config, &mut registry).await.unwrap();
    let addr = hub.insecure_addr.or(hub.secure_addr).unwrap();
    let status = hub.status_handle();
    let task = tokio::spawn(async move {
        let _ = hub.serve().await;
    });
    TestHub {
        addr,
        status,
        registry,
        task,
    }
}

/// Waits (bounded) until the hub's online state is `online`.
pub async fn wait_online(hub: &TestHub, online: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.status.is_online() != online {
        assert!(
            Instant::now() < deadline,
            "hub never became online={online}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A request as `agent` with bearer `token`; returns status and body.
pub async fn call(
    method: &str,
    url: &str,
    agent: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("user-agent", agent);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = Full::new(Bytes::from(body.unwrap_or("").to_string()));
    let request = request
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client().request(request))
        .await
        .expect("request timed out")
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub async fn get(url: &str, agent: &str, token: Option<&str>) -> (u16, String) {
    call("GET", url, agent, token, None).await
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn names(list: &serde_json::Value) -> Vec<String> {
    let items = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"));
    items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

pub fn empty() -> Empty<Bytes> {
    Empty::new()
}

/// The upstream double with a few objects.
pub fn apiserver() -> ApiServer {
    let api = ApiServer::start().unwrap();
    for (ns, name, app) in [
        ("prod", "web-1", "web"),
        ("prod", "db-1", "db"),
        ("dev", "web-2", "web"),
    ] {
        api.apply(serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
            "spec": {"nodeName": "n1"}}))
            .unwrap();
    }
    api.apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "prod"}, "data": {"k": "v"}}))
        .unwrap();
    api
}
