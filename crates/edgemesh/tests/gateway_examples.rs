//! Issue acceptance (the ingress gateway): EdgeMesh's own gateway examples, unchanged, served by
//! the real `edgemesh gateway` in a node namespace and used with curl from a host on the LAN
//! exactly as EdgeMesh's guide shows; then a route change, a broken VirtualService next to good
//! ones, WebSocket, a TCP route, TLS passthrough by SNI, and a certificate rotated while clients
//! connect.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use datapath_support::gateway::{Gateway, READY, listens_on};
use datapath_support::{Cluster, NODE_IP, NODE_NAME, PYTHON, client_on, curl_on, tally};
use edgemesh_testkit::topology::Host;

const HTTP_EXAMPLE: &str = include_str!("fixtures/gateway/hostname-lb-random-gateway.yaml");
const TLS_EXAMPLE: &str = include_str!("fixtures/gateway/hostname-lb-random-gateway-tls.yaml");
const ROUTE_EXAMPLE: &str = include_str!("fixtures/gateway/hostname-lb-random-gateway-route.yaml");
const CLIENT_IP: &str = "192.0.2.50";

/// The endpoints of EdgeMesh's `hostname-lb-svc` in a site without an API server: the test's
/// pods serve HTTP on 8080 (the example's image serves 9376).
fn hostname_endpoints(cluster: &Cluster) -> String {
    let addresses: String = cluster
        .pod_ips()
        .iter()
        .map(|ip| format!("      - ip: {ip}\n        nodeName: {NODE_NAME}\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: hostname-lb-svc\nsubsets:\n  - addresses:\n{addresses}    ports:\n      - name: http-0\n        port: 8080\n        protocol: TCP\n"
    )
}

/// `kubectl create secret tls NAME --cert tls.crt --key tls.key` as a manifest.
fn tls_secret(name: &str, dir: &Path) -> String {
    let b64 = |file: &str| {
        let out = std::process::Command::new("base64")
            .args(["-w0", dir.join(file).to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64("tls.crt"),
        b64("tls.key")
    )
}

/// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=CN` into `dir` (as EdgeMesh's guide).
fn self_signed(dir: &Path, cn: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", &format!("/CN={cn}")])
        .args(["-keyout", dir.join("tls.key").to_str().unwrap()])
        .args(["-out", dir.join("tls.crt").to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    dir.to_path_buf()
}

fn curl(client: &Host, url: &str, extra: &[&str]) -> Result<String, String> {
    curl_on(client, url, extra)
}

#[test]
fn gateway_serves_edgemesh_http_examples_and_routes_live() {
    let mut cluster = Cluster::new("gwh", 2);
    let client = cluster.lan_host("client", CLIENT_IP, &[]);
    let files = tempfile::tempdir().unwrap();
    cluster.apply("example.yaml", HTTP_EXAMPLE);
    cluster.apply("endpoints.yaml", &hostname_endpoints(&cluster));
    let gateway = Gateway::start(&cluster, files.path());
    gateway.wait_routes("port 23333 open", |r| listens_on(r, 23333));

    // The guide: `curl 192.168.0.211:23333` answers a pod's host name.
    let url = format!("http://{NODE_IP}:23333");
    let answers: Vec<String> = (0..20).map(|_| curl(&client, &url, &[]).unwrap()).collect();
    let counts = tally(&answers);
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["pod-a", "pod-b"],
        "{counts:?}"
    );

    // EdgeMesh's route example replaces it live: host hostname.org, prefix /who.
    cluster.apply("example.yaml", ROUTE_EXAMPLE);
    let status = |path: &str, host: &str| {
        let host = format!("Host: {host}");
        curl(
            &client,
            &format!("{url}{path}"),
            &["-H", &host, "-o", "/dev/null", "-w", "%{http_code}"],
        )
        .unwrap_or_default()
    };
    datapath_support::wait_until("/ no longer routed", READY, || {
        status("/", "hostname.org") == "404"
    })
    .unwrap();
    assert_eq!(status("/whoami", "hostname.org"), "200");
    assert_eq!(
        status("/whoami", "other.org"),
        "404",
        "the Gateway serves hostname.org only"
    );

    // A broken VirtualService next to the good one: named in /debug/routes and the log, the
    // good one keeps serving.
    cluster.apply(
        "broken.yaml",
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata:\n  name: broken\nspec:\n  gateways: [edgemesh-gateway]\n  hosts: ['*']\n  http:\n    - match:\n        - uri:\n            regex: '('\n      route:\n        - destination:\n            host: hostname-lb-svc\n",
    );
    gateway.wait_routes("the broken VirtualService reported", |r| {
        r["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["object"] == "VirtualService default/broken")
    });
    assert!(
        gateway
            .process
            .logs()
            .contains("VirtualService default/broken")
    );
    let answer = curl(
        &client,
        &format!("{url}/who"),
        &["-H", "Host: hostname.org"],
    )
    .unwrap();
    assert!(answer.starts_with("pod-"), "{answer}");

    // WebSocket and a TCP route, each on a port of its own.
    cluster.apply("ws-tcp.yaml", WS_AND_TCP);
    cluster.apply("echo-endpoints.yaml", &echo_endpoints(&cluster));
    gateway.wait_routes("ports 23334 and 23335 open", |r| {
        listens_on(r, 23334) && listens_on(r, 23335)
    });
    let script = "import asyncio,sys,websockets\n\
         async def main():\n\
         \x20   async with websockets.connect(sys.argv[1], open_timeout=3) as ws:\n\
         \x20       await ws.send('hi')\n\
         \x20       print(await asyncio.wait_for(ws.recv(), 3))\n\
         asyncio.run(main())\n";
    let ws = client_on(
        &client,
        PYTHON,
        &["-c", script, &format!("ws://{NODE_IP}:23334/")],
        b"",
    )
    .unwrap();
    assert!(
        ws.trim().starts_with("pod-") && ws.trim().ends_with(":hi"),
        "{ws}"
    );
    // ncat half-closes at the end of its input; the pod echoes until then.
    let echo = client_on(&client, "ncat", &[NODE_IP, "23335"], b"ping\n").unwrap();
    assert_eq!(echo.trim(), "ping");
}

/// A Gateway with a WebSocket (HTTP) server and a TCP server, and their routes to the pods'
/// WebSocket echo (8765) and TCP echo (9000).
const WS_AND_TCP: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  ports:
    - {name: ws, port: 8765, protocol: TCP}
    - {name: tcp, port: 9000, protocol: TCP}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: echo
spec:
  selector:
    kubeedge: edgemesh-gateway
  servers:
    - port: {number: 23334, name: ws, protocol: HTTP}
      hosts: ['*']
    - port: {number: 23335, name: tcp, protocol: TCP}
      hosts: ['*']
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: echo
spec:
  hosts: ['*']
  gateways: [echo]
  http:
    - route:
        - destination: {host: echo, port: {number: 8765}}
  tcp:
    - match:
        - port: 23335
      route:
        - destination: {host: echo, port: {number: 9000}}
";

fn echo_endpoints(cluster: &Cluster) -> String {
    let ip = cluster.pod_ips()[0];
    format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: echo\nsubsets:\n  - addresses:\n      - ip: {ip}\n    ports:\n      - {{name: ws, port: 8765, protocol: TCP}}\n      - {{name: tcp, port: 9000, protocol: TCP}}\n"
    )
}

#[test]
fn gateway_serves_edgemesh_tls_example_as_its_guide_shows() {
    let mut cluster = Cluster::new("gwt", 2);
    let client = cluster.lan_host("client", CLIENT_IP, &[]);
    let files = tempfile::tempdir().unwrap();
    // The guide: openssl makes the pair, `kubectl create secret tls gw-secret` stores it.
    let pair = self_signed(&files.path().join("pair"), "gw");
    let other = self_signed(&files.path().join("other"), "someone-else");
    cluster.apply("secret.yaml", &tls_secret("gw-secret", &pair));
    cluster.apply("example.yaml", TLS_EXAMPLE);
    cluster.apply("endpoints.yaml", &hostname_endpoints(&cluster));
    let gateway = Gateway::start(&cluster, files.path());
    gateway.wait_routes("port 23333 open with TLS", |r| {
        listens_on(r, 23333) && r["ports"][0]["mode"] == "HTTPS (terminated)"
    });
    let routes = gateway.routes();
    let warnings = routes["warnings"].to_string();
    assert!(
        warnings.contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"),
        "CBC suites are warned: {warnings}"
    );

    // `curl -k --cert ./tls.crt --key ./tls.key https://<node-ip>:23333`
    let url = format!("https://{NODE_IP}:23333");
    let cert = pair.join("tls.crt");
    let key = pair.join("tls.key");
    let with_pair = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let answer = curl(&client, &url, &with_pair).unwrap();
    assert!(answer.starts_with("pod-"), "{answer}");
    // Without a certificate, or with another one: refused.
    assert!(
        curl(&client, &url, &[]).is_err(),
        "a client without a certificate was served"
    );
    let (other_cert, other_key) = (other.join("tls.crt"), other.join("tls.key"));
    let with_other = [
        "--cert",
        other_cert.to_str().unwrap(),
        "--key",
        other_key.to_str().unwrap(),
    ];
    assert!(
        curl(&client, &url, &with_other).is_err(),
        "another certificate was accepted"
    );
    // TLS 1.2 only, as the example says.
    let tls13 = [&with_pair[..], &["--tlsv1.3"]].concat();
    assert!(curl(&client, &url, &tls13).is_err(), "TLS 1.3 was accepted");
}

#[test]
fn gateway_rotates_certificates_under_load_and_passes_tls_through_by_sni() {
    let mut cluster = Cluster::new("gwr", 1);
    let client = cluster.lan_host("client", CLIENT_IP, &[]);
    let files = tempfile::tempdir().unwrap();
    let first = self_signed(&files.path().join("first"), "first");
    cluster.apply("secret.yaml", &tls_secret("web-cert", &first));
    cluster.apply(
        "web.yaml",
        &SIMPLE_AND_PASSTHROUGH.replace("POD_IP", cluster.pod_ips()[0]),
    );
    let gateway = Gateway::start(&cluster, files.path());
    gateway.wait_routes("ports 24443 and 24444 open", |r| {
        listens_on(r, 24443) && listens_on(r, 24444)
    });

    // Passthrough: the pod's own certificate (DNS:web.shop.svc) answers, chosen by SNI.
    let resolve = format!("web.shop.svc:24444:{NODE_IP}");
    let answer = curl(
        &client,
        "https://web.shop.svc:24444/",
        &["--resolve", &resolve],
    )
    .unwrap();
    assert_eq!(answer, "pod-a");
    assert!(
        curl(&client, &format!("https://{NODE_IP}:24444/"), &[]).is_err(),
        "a ClientHello for no routed name was passed through"
    );

    // Rotation: a client loop runs while the Secret changes; every request answers, and new
    // handshakes present the new certificate.
    let url = format!("https://{NODE_IP}:24443/");
    let issuer = |client: &Host| {
        let out = client_on(
            client,
            "sh",
            &[
                "-c",
                &format!(
                    "curl -skv --max-time 5 {url} 2>&1 >/dev/null | grep -o 'subject: CN=[a-z]*'"
                ),
            ],
            b"",
        );
        out.unwrap_or_default().trim().to_string()
    };
    assert_eq!(issuer(&client), "subject: CN=first");
    let loop_script = format!(
        "ok=0; fail=0; for i in $(seq 1 150); do if curl -sk --max-time 5 {url} >/dev/null; then ok=$((ok+1)); else fail=$((fail+1)); fi; done; echo $ok $fail"
    );
    let looping = {
        let client = client.clone();
        // Longer than a single client's time limit: run it without one (each curl has its own).
        std::thread::spawn(move || {
            let out = client.command("sh").args(["-c", &loop_script]).output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let second = self_signed(&files.path().join("second"), "second");
    cluster.apply("secret.yaml", &tls_secret("web-cert", &second));
    datapath_support::wait_until("the new certificate served", READY, || {
        issuer(&client) == "subject: CN=second"
    })
    .unwrap();
    let counts = looping.join().unwrap().unwrap();
    assert_eq!(
        counts.trim(),
        "150 0",
        "requests during the rotation (ok fail)"
    );
}

/// A SIMPLE server with Secret `web-cert` and a PASSTHROUGH server routing web.shop.svc to the
/// pods' HTTPS port (8443); POD_IP is replaced by the pod's address.
const SIMPLE_AND_PASSTHROUGH: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - {name: http, port: 80, protocol: TCP, targetPort: 8080}
    - {name: https, port: 443, protocol: TCP, targetPort: 8443}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: web
subsets:
  - addresses:
      - ip: POD_IP
    ports:
      - {name: http, port: 8080, protocol: TCP}
      - {name: https, port: 8443, protocol: TCP}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: web
spec:
  selector:
    kubeedge: edgemesh-gateway
  servers:
    - port: {number: 24443, name: https, protocol: HTTPS}
      hosts: ['*']
      tls: {mode: SIMPLE, credentialName: web-cert}
    - port: {number: 24444, name: tls, protocol: TLS}
      hosts: ['*']
      tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: ['*']
  gateways: [web]
  http:
    - route:
        - destination: {host: web, port: {number: 80}}
  tls:
    - match:
        - port: 24444
          sniHosts: [web.shop.svc]
      route:
        - destination: {host: web, port: {number: 443}}
";
