//! The admin HTTP endpoint.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use edgemesh_host::{HostSockets, SocketFactory};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::liveness::Liveness;
use crate::readiness::ReadyChecks;
use crate::reply::Reply;

fn reply_of((status, body): (u16, String)) -> Reply {
    Reply::text(status, body)
}

/// A GET handler.
pub type Route = Arc<dyn Fn() -> Reply + Send + Sync>;

/// The admin server: GET routes by exact path. Routes are read-only, so exposing the server on
/// loopback (the default) is safe; on another address it reveals the mesh's topology.
#[derive(Clone, Default)]
pub struct AdminServer {
    routes: BTreeMap<&'static str, Route>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("routes", &self.routes.keys())
            .finish()
    }
}

impl AdminServer {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn route(
        mut self,
        path: &'static str,
        handler: impl Fn() -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.routes.insert(path, Arc::new(handler));
        self
    }

    /// `/livez` (Kubernetes' name) and `/healthz` (EdgeMesh's probes): 200 while every loop
    /// `liveness` watches runs, 503 naming the ones that ended.
    #[must_use]
    pub fn liveness(self, liveness: Liveness) -> Self {
        let healthz = liveness.clone();
        self.route("/livez", move || reply_of(liveness.health()))
            .route("/healthz", move || reply_of(healthz.health()))
    }

    /// `/readyz`: 200 when every component `checks` asks is ready, else 503; one line per
    /// component either way.
    #[must_use]
    pub fn readiness(self, checks: ReadyChecks) -> Self {
        self.route("/readyz", move || reply_of(checks.answer()))
    }

    /// `/metrics`: `registry` encoded at each scrape.
    #[must_use]
    pub fn metrics(self, registry: Arc<prometheus_client::registry::Registry>) -> Self {
        self.route("/metrics", move || crate::metrics::encode(&registry))
    }

    /// Binds `addr` with a plain socket of the host seam (port 0 picks a free port) and returns the bound address with the serving future.
    pub async fn bind(
        self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, impl std::future::Future<Output = ()>)> {
        let listener = HostSockets::default().tcp_bind(addr)?;
        let local = listener.local_addr()?;
        Ok((local, serve(listener, Arc::new(self))))
    }

    fn respond(&self, req: &Request<Incoming>) -> Reply {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Reply::text(405, "only GET is supported\n");
        }
        match self.routes.get(req.uri().path()) {
            Some(route) => route(),
            None => {
                let paths: Vec<&str> = self.routes.keys().copied().collect();
                Reply::text(
                    404,
                    format!("not found; try one of: {}\n", paths.join(", ")),
                )
            }
        }
    }
}

async fn serve(listener: TcpListener, server: Arc<AdminServer>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "admin endpoint accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let reply = server.respond(&req);
                async move { Ok::<_, Infallible>(to_response(reply)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = reply.content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn routes_and_not_found() {
        let server = AdminServer::new().liveness(Liveness::default());
        let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        tokio::spawn(serving);
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/livez").await.starts_with("HTTP/1.1 200"));
        let missing = get(addr, "/nope").await;
        assert!(
            missing.starts_with("HTTP/1.1 404") && missing.contains("/healthz"),
            "{missing}"
        );
    }
}
