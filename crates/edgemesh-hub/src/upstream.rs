//! The upstream apiservers: HTTP/1.1 clients (TLS with the given CA bundle), URL
//! building, and one health probe (`prober.rs` runs them).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::HubError;
use crate::health::Outcome;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// One upstream apiserver URL (`https://10.0.0.1:6443`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub url: String,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
}

impl Upstream {
    pub fn parse(url: &str) -> Result<Self, HubError> {
        let bad = |why: &str| HubError::Config(format!("--server-addr '{url}': {why}"));
        let uri: Uri = url.trim().parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| bad("needs http:// or https://"))?;
        if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
            return Err(bad("scheme must be http or https"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| bad("needs a host"))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad("must not have a path"));
        }
        Ok(Self {
            url: format!("{scheme}://{authority}"),
            scheme,
            authority,
        })
    }

    /// The upstream URI for a request's path and query.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    pub fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }
}

/// The hub's two clients to its upstreams, over one connector (same CA bundle, same timeouts).
#[derive(Debug, Clone)]
pub struct Clients {
    /// Keep-alive connections reused across requests: everything but upgrades.
    pub pooled: HttpClient,
    /// A new connection for every request, for upgrades (exec, attach, port-forward): an
    /// upgraded connection is consumed anyway, and a pooled one the apiserver has just closed
    /// would fail the request after it was sent, which cannot be retried safely (a `POST`).
    pub fresh: HttpClient,
}

/// Builds the clients. `ca_file` holds the PEM CA bundle that signs the upstreams' serving
/// certificates (required for https upstreams).
pub fn clients(ca_file: Option<&Path>, connect_timeout: Duration) -> Result<Clients, HubError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        for cert in crate::tls::read_certs(path, "CA bundle")? {
            roots
                .add(cert)
                .map_err(|e| HubError::Tls(format!("CA bundle {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HubError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Clients {
        pooled: Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https.clone()),
        fresh: Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(https),
    })
}

pub fn empty_body() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// One probe: any answer below 500 means the apiserver is there (401/403 when anonymous
/// requests are disabled still prove it is reachable); 5xx, a timeout or no answer is a failure.
pub async fn probe(
    client: &HttpClient,
    upstream: &Upstream,
    path: &str,
    timeout: Duration,
) -> Outcome {
    let Ok(uri) = upstream.uri(path) else {
        return Outcome::Failure;
    };
    let Ok(request) = Request::get(uri).body(empty_body()) else {
        return Outcome::Failure;
    };
    match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) if response.status().as_u16() < 500 => {
            // Drain so the connection goes back to the pool.
            let _ = tokio::time::timeout(timeout, response.into_body().collect()).await;
            Outcome::Success
        }
        _ => Outcome::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let up = Upstream::parse("https://10.0.0.1:6443").unwrap();
        assert_eq!(
            up.uri("/api/v1/pods?limit=1").unwrap().to_string(),
            "https://10.0.0.1:6443/api/v1/pods?limit=1"
        );
        assert!(Upstream::parse("http://127.0.0.1:8080/").is_ok());
        for bad in ["10.0.0.1:6443", "ftp://x", "https://x/path", ""] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
