//! gRPC through the gateway with real gRPC peers (Python grpcio, `scripts/setup.sh` installs
//! it): a server behind a Service port named `grpc`, a client calling the gateway's GRPC
//! server. Unary calls (one of 1 MiB), a server stream, the standard health service, and an
//! error status that must reach the client in the trailers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use edgemesh_model::ingress::{GatewaySpec, ServerProtocol, ServerSpec};
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

/// Runs `echo.py call address`: one line per call.
fn grpc_calls(address: String) -> String {
    let out = Command::new("python3")
        .args([SCRIPT, "call", &address])
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

fn grpc_gateway(port: u16, protocol: ServerProtocol) -> Resource {
    Resource::Gateway(GatewaySpec {
        key: ObjectKey::new("default", "edgemesh-gateway"),
        selector: BTreeMap::from([("kubeedge".into(), "edgemesh-gateway".into())]),
        servers: vec![ServerSpec {
            port,
            port_name: "grpc".into(),
            protocol,
            hosts: vec!["*".into()],
            tls: None,
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_calls_a_grpc_server_through_the_gateway() {
    let target = free_port();
    let _server = grpc_server(&format!("127.0.0.7:{target}"));
    let port = free_port();
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
        grpc_gateway(port, ServerProtocol::Grpc),
    );
    let vs = virtual_service(
        "echo",
        &["*"],
        vec![http_route(
            vec![prefix("/")],
            vec![destination("echo", 9000, 100)],
        )],
    );
    catalog.upsert(SourceId::Manifests, Resource::VirtualService(vs));
    let _gw = gateway(snapshot(&catalog, 1)).await;
    let answers = tokio::task::spawn_blocking(move || grpc_calls(format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    let expected = [
        "health SERVING",
        "unary hello",
        "big 1048576 same",
        "stream chunk-0 chunk-1 chunk-2 chunk-3 chunk-4",
        // grpc-status and grpc-message come back in the trailers, untouched.
        "notfound NOT_FOUND no such thing",
    ];
    assert_eq!(answers.lines().collect::<Vec<_>>(), expected, "{answers}");
}
