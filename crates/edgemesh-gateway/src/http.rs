//! HTTP through the gateway: each request is routed on its own (host, path, headers…), sent to
//! a weighted destination's endpoint and answered with the backend's response.
//!
//! Downstream, HTTP/1.1 and HTTP/2 (h2c with prior knowledge, or `h2` by ALPN behind TLS) are
//! told apart by the connection's first bytes. Upstream, a request goes as HTTP/2 when the
//! Service port declares it as Istio reads ports (`appProtocol` or name `grpc`, `http2`, `h2c`)
//! or the request is gRPC (whose servers speak nothing else), and as HTTP/1.1 otherwise: a
//! browser that negotiated `h2` with the gateway must still reach an HTTP/1.1 backend. Upstream connections are kept per downstream connection, target and protocol: a
//! keep-alive client keeps its backend connection too. WebSocket (`Connection: upgrade`)
//! requests get an upstream connection of their own, and after the backend's 101 both upgraded
//! connections are copied both ways.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use edgemesh_lb::Lease;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::Shared;
pub use crate::exchange::Body;
use crate::exchange::Failure;
use crate::hosts::request_host;
use crate::matcher::{RequestMatch, RequestView, StringMatch};
use crate::table::{HttpAction, HttpRoute, PortMode, Target};
use edgemesh_model::ObjectKey;
use edgemesh_model::ingress::{HeaderOps, RedirectSpec};

/// Where a downstream connection arrived.
#[derive(Clone, Copy, Debug)]
pub struct Downstream {
    pub client: SocketAddr,
    pub port: u16,
    pub tls: bool,
}

/// Serves HTTP/1.1 requests on one downstream connection until it closes.
pub async fn serve<IO>(io: IO, down: Downstream, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let pool = Arc::new(Pool::default());
    let service = service_fn(move |request| {
        let (shared, pool) = (Arc::clone(&shared), Arc::clone(&pool));
        async move { Ok::<_, Infallible>(handle(request, down, &shared, &pool).await) }
    });
    let served = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(client = %down.client, %error, "downstream connection ended with an error");
    }
}

/// Upstream connections of one downstream connection, by target and protocol.
#[derive(Default)]
struct Pool(Mutex<HashMap<PoolKey, Pooled>>);

/// What makes upstream connections interchangeable: the Service port, the subset (two routes to
/// one Service's subsets must never share a connection: it leads to one pod) and the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    service: ObjectKey,
    port: Option<u16>,
    subset: Option<String>,
    h2: bool,
}

fn pool_key(target: &Target, h2: bool) -> PoolKey {
    PoolKey {
        service: target.service.clone(),
        port: target.port,
        subset: target.subset_name().map(str::to_owned),
        h2,
    }
}

struct Pooled {
    sender: Sender,
    /// The endpoint it leads to (a retry goes elsewhere).
    endpoint: SocketAddr,
    /// The balancer's count of this backend's live connections.
    _lease: Lease,
}

/// An upstream connection in the protocol the requests came in.
enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Sender {
    async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    async fn send(&mut self, request: Request<Body>) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        }
    }
}

impl Pool {
    fn take(&self, key: &PoolKey) -> Option<Pooled> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key)
    }

    fn put(&self, key: PoolKey, pooled: Pooled) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, pooled);
    }
}

/// The target of the access log: one line per request at DEBUG, off by default as Istio's
/// (`--log-level info,edgemesh_gateway::access=debug` turns it on). Written synchronously to
/// stderr, it cost 10 % of the requests a keep-alive client got and doubled its p99.
const ACCESS_LOG: &str = "edgemesh_gateway::access";

async fn handle(
    request: Request<Incoming>,
    down: Downstream,
    shared: &Shared,
    pool: &Pool,
) -> Response<Body> {
    let started = Instant::now();
    let logged = tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG)
        .then(|| (request.method().clone(), request.uri().path().to_owned()));
    let (route, response) = route_and_answer(request, down, shared, pool).await;
    let route_name = route.as_deref().map_or("none", |r| r.name.as_str());
    let code = response.status().as_u16();
    let elapsed = started.elapsed();
    shared
        .metrics
        .request(route_name, code, elapsed.as_secs_f64());
    if let Some((method, path)) = logged {
        tracing::debug!(
            target: ACCESS_LOG,
            client = %down.client,
            port = down.port,
            %method,
            %path,
            route = route_name,
            code,
            micros = elapsed.as_micros() as u64,
            "request"
        );
    }
    response
}

async fn route_and_answer(
    mut request: Request<Incoming>,
    down: Downstream,
    shared: &Shared,
    pool: &Pool,
) -> (Option<Arc<HttpRoute>>, Response<Body>) {
    let table = shared.table.load();
    let Some(port) = table.ports.get(&down.port) else {
        return (
            None,
            local(StatusCode::NOT_FOUND, "no gateway server on this port\n"),
        );
    };
    let authority = authority_of(&request);
    let host = request_host(&authority);
    if let PortMode::Http {
        https_redirect: true,
        ..
    } = port.mode
    {
        let location = format!("https://{host}{}", path_and_query(request.uri()));
        return (None, redirect(StatusCode::MOVED_PERMANENTLY, &location));
    }
    if !port.serves_host(&host) {
        return (
            None,
            local(StatusCode::NOT_FOUND, "no server for this host\n"),
        );
    }
    let view = RequestView {
        path: request.uri().path(),
        query: request.uri().query(),
        method: request.method().as_str(),
        authority: &authority,
        headers: request.headers(),
        port: down.port,
    };
    let Some((route, matched)) = port.route_http(&host, &view) else {
        return (
            None,
            local(StatusCode::NOT_FOUND, "no route matches this request\n"),
        );
    };
    let route = Arc::clone(route);
    let uri_match = matched.and_then(RequestMatch::uri).cloned();
    let response = match &route.action {
        HttpAction::Redirect(spec) => redirect_to(spec, &request, &host, down),
        HttpAction::Forward(destinations) => {
            let target = destinations.pick(rand::random::<u32>()).clone();
            rewrite(&mut request, &route, uri_match.as_ref(), down);
            forward(request, &route, &target, down, shared, pool).await
        }
    };
    (Some(route), response)
}

async fn forward(
    request: Request<Incoming>,
    route: &HttpRoute,
    target: &Target,
    down: Downstream,
    shared: &Shared,
    pool: &Pool,
) -> Response<Body> {
    let sending = send(request, route, target, down, shared, pool);
    let result = match route.timeout {
        Some(limit) => match tokio::time::timeout(limit, sending).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        },
        None => sending.await,
    };
    match result {
        Ok(mut response) => {
            // A 101 keeps `Connection: upgrade` and `Upgrade`: the client checks them.
            let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
            strip_hop_by_hop(response.headers_mut(), switching);
            apply(&route.headers.response, response.headers_mut());
            response
        }
        Err(failure) => {
            shared.metrics.upstream_error(&route.name);
            tracing::warn!(route = %route.name, service = %target.service, error = %failure, "upstream failed");
            failure.response()
        }
    }
}

impl Failure {
    fn response(&self) -> Response<Body> {
        match self {
            Failure::Backend(crate::backend::BackendError::NoService(_))
            | Failure::Backend(crate::backend::BackendError::NoPort { .. })
            | Failure::Backend(crate::backend::BackendError::UndefinedSubset(_)) => {
                local(StatusCode::SERVICE_UNAVAILABLE, &format!("{self}\n"))
            }
            Failure::Backend(_) => local(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream\n"),
            Failure::Http(_) => local(StatusCode::BAD_GATEWAY, "upstream connection failed\n"),
            Failure::Timeout => local(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout\n"),
        }
    }
}

async fn send(
    mut request: Request<Incoming>,
    route: &HttpRoute,
    target: &Target,
    down: Downstream,
    shared: &Shared,
    pool: &Pool,
) -> Result<Response<Body>, Failure> {
    let upgrade = is_upgrade(request.headers());
    let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    // `TE: trailers` is the one TE HTTP/2 allows, and gRPC servers refuse a call without it.
    let te_trailers = wants_trailers(request.headers());
    strip_hop_by_hop(request.headers_mut(), upgrade);
    if te_trailers {
        request
            .headers_mut()
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    apply(&route.headers.request, request.headers_mut());
    let h2 = is_grpc(request.headers()) || shared.backends.speaks_h2(target);
    let request = for_upstream(request.map(|body| body.boxed()), h2, target);
    let exchange = Exchange {
        route: &route.name,
        key: pool_key(target, h2),
        target,
        h2,
        down,
        shared,
        pool,
    };
    if let (None, Some(policy)) = (&downstream_upgrade, &route.retry) {
        return crate::retry::send(request, policy, &exchange).await;
    }
    let mut pooled = exchange.connection(upgrade, &[]).await?;
    let mut response = pooled.sender.send(request).await?;
    match downstream_upgrade {
        Some(downstream) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let upstream = hyper::upgrade::on(&mut response);
            tokio::spawn(join_upgraded(downstream, upstream, pooled));
        }
        Some(_) => {}
        None => pool.put(exchange.key, pooled),
    }
    Ok(response.map(|body| body.boxed()))
}

/// One try of a request that may be retried, on this downstream connection's pool.
struct Exchange<'a> {
    route: &'a str,
    key: PoolKey,
    target: &'a Target,
    h2: bool,
    down: Downstream,
    shared: &'a Shared,
    pool: &'a Pool,
}

impl Exchange<'_> {
    /// This downstream connection's upstream connection to the target once it can take a
    /// request, or a new one to an endpoint not in `avoid` if it can (`fresh`: an upgrade, whose
    /// connection becomes the upgraded one, or a retry).
    async fn connection(&self, fresh: bool, avoid: &[SocketAddr]) -> Result<Pooled, Failure> {
        match reusable(fresh, self.pool, &self.key).await {
            // A pod relabelled out of the subset since: its connection goes, a new one opens.
            Some(pooled) if self.target.admits(pooled.endpoint.ip()) => Ok(pooled),
            _ => open(self.target, self.h2, self.down, self.shared, avoid).await,
        }
    }
}

impl crate::retry::Exchange for Exchange<'_> {
    type Connection = Pooled;

    async fn connect(
        &self,
        retry: bool,
        avoid: &[SocketAddr],
    ) -> Result<(Pooled, SocketAddr), Failure> {
        let pooled = self.connection(retry, avoid).await?;
        let endpoint = pooled.endpoint;
        Ok((pooled, endpoint))
    }

    async fn send(
        &self,
        mut pooled: Pooled,
        request: Request<Body>,
    ) -> Result<Response<Body>, Failure> {
        let response = pooled.sender.send(request).await?;
        self.pool.put(self.key.clone(), pooled);
        Ok(response.map(|body| body.boxed()))
    }

    fn retrying(&self) {
        self.shared.metrics.retry(self.route);
    }
}

/// The request as the upstream protocol wants it: HTTP/1.1 needs `Host` (an HTTP/2 request
/// carries its authority in the URI), HTTP/2 an absolute URI for `:scheme` and `:authority`.
/// `name.namespace.svc.cluster.local[:port]`: the destination as a client in the cluster
/// would address it.
fn service_authority(target: &Target) -> String {
    let host = format!(
        "{}.{}.svc.cluster.local",
        target.service.name, target.service.namespace
    );
    match target.port {
        Some(port) if port != 80 => format!("{host}:{port}"),
        _ => host,
    }
}

fn for_upstream(mut request: Request<Body>, h2: bool, target: &Target) -> Request<Body> {
    if h2 {
        let authority = authority_of(&request);
        if !authority.is_empty() {
            let absolute = format!("http://{authority}{}", path_and_query(request.uri()));
            if let Ok(uri) = absolute.parse::<Uri>() {
                *request.uri_mut() = uri;
            }
        }
        request.headers_mut().remove(header::HOST);
        *request.version_mut() = Version::HTTP_2;
    } else {
        if request.headers().get(header::HOST).is_none()
            && let Some(value) = request
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(header::HOST, value);
        }
        // HTTP/1.1 requires a Host and HTTP/1.0 clients may send none (`openssl s_time`,
        // probes): the upstream would answer 400 and close its pooled connection. nginx sends
        // its upstream's name by default; the Service's cluster name is ours.
        if request.headers().get(header::HOST).is_none()
            && let Ok(value) = HeaderValue::from_str(&service_authority(target))
        {
            request.headers_mut().insert(header::HOST, value);
        }
        let origin_form = path_and_query(request.uri());
        if let Ok(uri) = origin_form.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
        *request.version_mut() = Version::HTTP_11;
    }
    request
}

/// This downstream connection's upstream connection to `target`, once it can take a request
/// (`fresh`: an upgrade, whose connection becomes the upgraded one, or a retry).
async fn reusable(fresh: bool, pool: &Pool, key: &PoolKey) -> Option<Pooled> {
    if fresh {
        return None;
    }
    let mut pooled = pool.take(key)?;
    pooled.sender.ready().await.ok()?;
    Some(pooled)
}

/// A new upstream connection to an endpoint of `target`, not one of `avoid` if it can.
async fn open(
    target: &Target,
    h2: bool,
    down: Downstream,
    shared: &Shared,
    avoid: &[SocketAddr],
) -> Result<Pooled, Failure> {
    let connected = shared
        .backends
        .connect_avoiding(target, down.client.ip(), None, avoid)
        .await?;
    let endpoint = connected.picked.backend.addr;
    let io = TokioIo::new(connected.upstream.into_stream());
    let sender = if h2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
            }
        });
        Sender::H2(sender)
    } else {
        let (sender, connection) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Sender::H1(sender)
    };
    Ok(Pooled {
        sender,
        endpoint,
        _lease: connected.picked.lease,
    })
}

/// After both sides switched protocols: copy the upgraded connections both ways.
async fn join_upgraded(
    downstream: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    pooled: Pooled,
) {
    let (down, up) = match tokio::try_join!(downstream, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(%error, "protocol upgrade did not complete");
            return;
        }
    };
    let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
    let options = edgemesh_copy::Options::default();
    if let Err(broke) = edgemesh_copy::both_ways(&mut down, &mut up, &(), options).await {
        tracing::debug!(error = %broke, "upgraded connection broke");
    }
    drop(pooled);
}

/// Applies `rewrite` and adds the forwarding headers Envoy adds.
fn rewrite(
    request: &mut Request<Incoming>,
    route: &HttpRoute,
    uri_match: Option<&StringMatch>,
    down: Downstream,
) {
    let headers = request.headers_mut();
    append_forwarded_for(headers, down.client);
    let proto = if down.tls { "https" } else { "http" };
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(proto),
    );
    let Some(rewrite) = &route.rewrite else {
        return;
    };
    if let Some(value) = rewrite
        .authority
        .as_deref()
        .and_then(|a| HeaderValue::from_str(a).ok())
    {
        request.headers_mut().insert(header::HOST, value);
    }
    if let Some(new_path) = &rewrite.uri {
        let path = request.uri().path();
        let rewritten = match uri_match {
            Some(StringMatch::Prefix(prefix)) => {
                format!("{new_path}{}", &path[prefix.len().min(path.len())..])
            }
            _ => new_path.clone(),
        };
        let with_query = match request.uri().query() {
            Some(q) => format!("{rewritten}?{q}"),
            None => rewritten,
        };
        if let Ok(uri) = with_query.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
}

fn append_forwarded_for(headers: &mut HeaderMap, client: SocketAddr) {
    let ip = client.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {ip}"),
        None => ip,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), value);
    }
}

fn redirect_to(
    spec: &RedirectSpec,
    request: &Request<Incoming>,
    host: &str,
    down: Downstream,
) -> Response<Body> {
    let scheme = spec
        .scheme
        .clone()
        .unwrap_or_else(|| if down.tls { "https" } else { "http" }.into());
    let authority = spec.authority.clone().unwrap_or_else(|| host.to_string());
    let port = spec.port.map(|p| format!(":{p}")).unwrap_or_default();
    let path = spec
        .uri
        .clone()
        .unwrap_or_else(|| path_and_query(request.uri()));
    let status = StatusCode::from_u16(spec.status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    redirect(status, &format!("{scheme}://{authority}{port}{path}"))
}

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| "/".into(), |pq| pq.as_str().to_string())
}

/// `Host`, or the request target's authority (absolute form).
fn authority_of<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Headers that describe one hop's connection (RFC 9110 §7.6.1), not the message; an upgrade
/// keeps `Connection`/`Upgrade` so that the backend sees it.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(upgrade && *n == header::UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection", "te", "trailer"] {
        headers.remove(name);
    }
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

fn apply(ops: &HeaderOps, headers: &mut HeaderMap) {
    for name in &ops.remove {
        headers.remove(name.as_str());
    }
    for (name, value) in &ops.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    for (name, value) in &ops.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
}

fn local(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = local(status, "");
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn full(text: &str) -> Body {
    Full::new(Bytes::copy_from_slice(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed()
}
