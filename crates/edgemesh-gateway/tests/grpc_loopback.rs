//! gRPC through the gateway with real gRPC peers (Python grpcio, `scripts/setup.sh` installs
//! it): a server behind a Service port named `grpc`, a client calling the gateway's GRPC
//! server in h2c, or its HTTPS server over TLS (h2 by ALPN). Unary calls (one of 1 MiB), a
//! server stream, the standard health service, and an error status that must reach the client
//! in the trailers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use common::*;
use edgemesh_model::ingress::{
    GatewaySpec, ServerProtocol, ServerSpec, ServerTls, TlsMode, TlsSecretSpec,
};
use edgemesh_model::{Catalog, ObjectKey, Resource, SourceId};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/echo.py");

/// A Python gRPC server; killed when dropped.
struct GrpcServer(Child);

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `echo.py serve address` and waits until it listens.
fn grpc_server(address: &str) -> GrpcServer {
    let mut child = Command::new("python3")
        .args([SCRIPT, "serve", address])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().unwrap();
    let server = GrpcServer(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "ready",
        "the gRPC server did not start (pip install grpcio grpcio-health-checking: scripts/setup.sh)"
    );
    server
}

/// Runs `echo.py call address tls…`: one line per call.
fn grpc_calls(address: String, tls: Vec<String>) -> String {
    let out = Command::new("python3")
        .args([SCRIPT, "call", &address])
        .args(tls)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gRPC client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What every call through the gateway must answer.
const EXPECTED: [&str; 5] = [
    "health SERVING",
    "unary hello",
    "big 1048576 same",
    "stream chunk-0 chunk-1 chunk-2 chunk-3 chunk-4",
    // grpc-status and grpc-message come back in the trailers, untouched.
    "notfound NOT_FOUND no such thing",
];

/// A gRPC server behind the Service `echo` (port named `grpc`), a Gateway with `server` and
/// `extra` objects, a VirtualService sending everything to `echo`; the client's answers
/// through the gateway (`tls`: the client's CA file and server name).
async fn calls_through_gateway(
    server: ServerSpec,
    extra: Vec<Resource>,
    tls: Vec<String>,
) -> String {
    let target = free_port();
    let _server = grpc_server(&format!("127.0.0.7:{target}"));
    let port = server.port;
    let mut catalog = Catalog::new();
    service_with_port_name(
        &mut catalog,
        "echo",
        "grpc",
        [10, 96, 0, 40],
        9000,
        &[[127, 0, 0, 7]],
        target,
    );
    catalog.upsert(
        SourceId::Manifests,
        Resource::Gateway(
            GatewaySpec {
                key: ObjectKey::new("default", "edgemesh-gateway"),
                selector: BTreeMap::from([("kubeedge".into(), "edgemesh-gateway".into())]),
                servers: vec![server],
            }
            .into(),
        ),
    );
    for resource in extra {
        catalog.upsert(SourceId::Manifests, resource);
    }
    let vs = virtual_service(
        "echo",
        &["*"],
        vec![http_route(
            vec![prefix("/")],
            vec![destination("echo", 9000, 100)],
        )],
    );
    catalog.upsert(SourceId::Manifests, Resource::VirtualService(Arc::new(vs)));
    let _gw = gateway(snapshot(&catalog, 1)).await;
    tokio::task::spawn_blocking(move || grpc_calls(format!("127.0.0.1:{port}"), tls))
        .await
        .unwrap()
}

fn grpc_server_spec(port: u16, protocol: ServerProtocol, tls: Option<ServerTls>) -> ServerSpec {
    ServerSpec {
        port,
        port_name: "grpc".into(),
        protocol,
        hosts: vec!["*".into()],
        tls,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_calls_a_grpc_server_through_the_gateway() {
    let server = grpc_server_spec(free_port(), ServerProtocol::Grpc, None);
    let answers = calls_through_gateway(server, vec![], vec![]).await;
    assert_eq!(answers.lines().collect::<Vec<_>>(), EXPECTED, "{answers}");
}

/// gRPC clients reach an ingress over TLS, HTTP/2 chosen by ALPN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_terminated_by_the_gateway() {
    let name = "grpc.example.com";
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.pem()).unwrap();
    let secret = Resource::Secret(
        TlsSecretSpec {
            key: ObjectKey::new("default", "grpc-cert"),
            cert_pem: Some(Arc::from(cert.pem().into_bytes())),
            key_pem: Some(Arc::from(key.serialize_pem().into_bytes())),
            ca_pem: None,
        }
        .into(),
    );
    let tls = ServerTls {
        mode: TlsMode::Simple,
        credential_name: Some("grpc-cert".into()),
        min_version: None,
        max_version: None,
        cipher_suites: vec![],
        https_redirect: false,
    };
    let server = grpc_server_spec(free_port(), ServerProtocol::Https, Some(tls));
    let client_tls = vec![ca.display().to_string(), name.to_string()];
    let answers = calls_through_gateway(server, vec![secret], client_tls).await;
    assert_eq!(answers.lines().collect::<Vec<_>>(), EXPECTED, "{answers}");
}
