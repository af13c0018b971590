//! Accept loop and request dispatch.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Shared;
use super::body::{Body, json};
use super::resources::{api_versions, version_info};
use super::route::{self, Route, Target};
use super::status::ApiError;

/// Serves until `stop` fires (or the handle is gone).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                // Down (a restart): the connection is closed before any byte is read.
                Ok(_) if !shared.reachable.load(Ordering::SeqCst) => {}
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        match shared.tls.clone() {
                            Some(config) => match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                                Ok(tls) => serve_connection(tls, shared).await,
                                Err(e) => shared.tls_errors().push(e.to_string()),
                            },
                            None => serve_connection(stream, shared).await,
                        }
                    });
                }
                // Out of descriptors and the like: back off a little rather than spin.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
        }
    }
}

async fn serve_connection<S>(stream: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| answer(shared.clone(), req));
    // A client hanging up or a cut watch ends the connection: nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// [`handle`], unless the server is down ([`super::ApiServer::restart`]): then a kept-alive
/// connection is dropped without an answer.
async fn answer(shared: Arc<Shared>, req: Request<Incoming>) -> std::io::Result<Response<Body>> {
    if !shared.reachable.load(Ordering::SeqCst) {
        return Err(std::io::Error::other("the apiserver double is down"));
    }
    handle(shared, req).await.map_err(|never| match never {})
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    shared
        .requests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(format!("{} {path_and_query}", req.method()));
    if !shared.available.load(Ordering::SeqCst) {
        return Ok(error(&ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        )));
    }
    let route = route::parse(req.uri().path(), &shared.served());
    let watch = matches!(&route, Route::Resource(t) if is_watch(t, req.uri().query()));
    if let Some(refusal) = shared
        .access
        .check(&route, req.method(), req.uri().path(), watch)
    {
        return Ok(error(&refusal));
    }
    let result = match route {
        Route::Resource(target) => resource_request(&shared, target, req).await,
        Route::NotFound => Err(not_found_path()),
        other if req.method() == Method::GET => discovery(&shared, other),
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    };
    Ok(result.unwrap_or_else(|e| error(&e)))
}

fn discovery(shared: &Shared, route: Route) -> Result<Response<Body>, ApiError> {
    let doc = match route {
        Route::Version => Some(version_info()),
        Route::CoreVersions => Some(api_versions(&shared.addr.to_string())),
        Route::Groups => Some(shared.served().api_group_list()),
        Route::Group(group) => shared.served().api_group(&group),
        Route::ResourceList { group, version } => shared.served().resource_list(&group, &version),
        Route::Resource(_) | Route::NotFound => None,
    };
    doc.map(|d| json(StatusCode::OK, &d))
        .ok_or_else(not_found_path)
}

async fn resource_request(
    shared: &Arc<Shared>,
    target: Target,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let params = route::query_params(req.uri().query());
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let served_subresource = match target.subresource.as_deref() {
        None | Some("status") => true,
        // kubectl certificate approve/deny: PUT .../certificatesigningrequests/NAME/approval.
        Some("approval") => target.resource.plural == "certificatesigningrequests",
        Some(_) => false,
    };
    if !served_subresource {
        return Err(not_found_path());
    }
    match (method, target.name.is_some()) {
        (Method::GET, _) if is_watch(&target, req.uri().query()) => {
            super::watch::start(shared, &target, &params)
        }
        (Method::GET, false) => super::rest::list(shared, &target, &params),
        (Method::GET, true) => super::rest::get(shared, &target),
        (Method::POST, false) => super::rest::create(shared, &target, read_json(req).await?),
        (Method::PUT, true) => super::rest::update(shared, &target, read_json(req).await?),
        (Method::PATCH, true) => {
            super::rest::patch(shared, &target, &content_type, read_json(req).await?)
        }
        (Method::DELETE, true) => super::rest::delete(shared, &target),
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn is_watch(target: &Target, query: Option<&str>) -> bool {
    let params = route::query_params(query);
    target.legacy_watch || matches!(params.get("watch").map(String::as_str), Some("1" | "true"))
}

async fn read_json(req: Request<Incoming>) -> Result<Value, ApiError> {
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// A `Status` response for `e`.
pub fn error(e: &ApiError) -> Response<Body> {
    json(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}
