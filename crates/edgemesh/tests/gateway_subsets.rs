//! Issue acceptance (the ingress gateway, `destination.subset`): the real `edgemesh gateway`
//! reads a DestinationRule's `subsets` and the Pods' labels from its manifests directory, splits
//! a route 80/20 between two subsets with each subset answered only by its own pods, answers a
//! subset no rule defines with a 503 naming it while the good route keeps serving, and follows a
//! pod relabelled live.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use datapath_support::gateway::{Gateway, READY, listens_on};
use datapath_support::{Cluster, NODE_IP, NODE_NAME, curl_on, tally};

const CLIENT_IP: &str = "192.0.2.50";
const PORT: u16 = 23340;
const REQUESTS: usize = 1000;

/// Service `web` (pods serve 8080), its Gateway, and a VirtualService: `/v3` to a subset nobody
/// defines, everything else 80/20 to subsets v1 and v2 of the DestinationRule `web`.
const ROUTES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{name: http-0, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web.default.svc.cluster.local
  subsets:
    - name: v1
      labels: {version: v1}
    - name: v2
      labels: {version: v2}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  selector: {kubeedge: edgemesh-gateway}
  servers:
    - port: {number: 23340, name: http, protocol: HTTP}
      hosts: ['*']
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: ['*']
  gateways: [web]
  http:
    - match: [{uri: {prefix: /v3}}]
      route:
        - destination: {host: web, port: {number: 80}, subset: v3}
    - route:
        - destination: {host: web, port: {number: 80}, subset: v1}
          weight: 80
        - destination: {host: web, port: {number: 80}, subset: v2}
          weight: 20
";

/// The Endpoints of `web` (every pod) and the Pods as `kubectl get pod -o yaml` shows them:
/// `versions[i]` is the `version` label of the i-th pod.
fn pods_and_endpoints(cluster: &Cluster, versions: &[&str]) -> String {
    let ips = cluster.pod_ips();
    let addresses: String = ips
        .iter()
        .map(|ip| format!("      - ip: {ip}\n        nodeName: {NODE_NAME}\n"))
        .collect();
    let mut yaml = format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: web, namespace: default}}\nsubsets:\n  - addresses:\n{addresses}    ports:\n      - {{name: http-0, port: 8080, protocol: TCP}}\n"
    );
    for (i, (ip, version)) in ips.iter().zip(versions).enumerate() {
        let name = format!("pod-{}", (b'a' + i as u8) as char);
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{app: web, version: {version}}}\nspec:\n  nodeName: {NODE_NAME}\n  containers: [{{name: web, image: web}}]\nstatus:\n  phase: Running\n  podIP: {ip}\n"
        ));
    }
    yaml
}

#[test]
fn gateway_routes_subsets_to_their_pods_and_names_an_undefined_one() {
    let mut cluster = Cluster::new("gws", 3);
    let client = cluster.lan_host("client", CLIENT_IP, &[]);
    let files = tempfile::tempdir().unwrap();
    cluster.apply("routes.yaml", ROUTES);
    cluster.apply(
        "pods.yaml",
        &pods_and_endpoints(&cluster, &["v1", "v1", "v2"]),
    );
    let gateway = Gateway::start(&cluster, files.path());
    gateway.wait_routes("the subset routes compiled", |r| {
        listens_on(r, PORT) && r["problems"].to_string().contains("\\\"v3\\\"")
    });

    // One curl, 1,000 requests, each routed on its own: v1 is pod-a and pod-b, v2 is pod-c.
    let url = format!("http://{NODE_IP}:{PORT}/");
    let urls: Vec<&str> = std::iter::repeat_n(url.as_str(), REQUESTS - 1).collect();
    // The pods end each answer with a newline.
    let extra = [&["--max-time", "60"], &urls[..]].concat();
    let body = curl_on(&client, &url, &extra).unwrap();
    let answers: Vec<String> = body.lines().map(str::to_string).collect();
    let counts = tally(&answers);
    assert_eq!(
        answers.len(),
        REQUESTS,
        "every request answered: {counts:?}"
    );
    let v1 = counts.get("pod-a").unwrap_or(&0) + counts.get("pod-b").unwrap_or(&0);
    let v2 = counts.get("pod-c").copied().unwrap_or(0);
    assert_eq!(v1 + v2, REQUESTS, "only the three pods answer: {counts:?}");
    // Binomial(1000, 0.8): sd ≈ 12.6; ±5 sd.
    assert!((737..=863).contains(&v1), "v1 got {v1} of 1000: {counts:?}");
    assert!(
        counts.get("pod-a") > Some(&100) && counts.get("pod-b") > Some(&100),
        "v1's two pods share its requests: {counts:?}"
    );

    // The undefined subset: 503 naming it, the other route unaffected.
    let v3 = curl_on(&client, &format!("{url}v3"), &["-w", "\\n%{http_code}"]).unwrap();
    assert!(
        v3.ends_with("503") && v3.contains("\"v3\"") && v3.contains("default/web"),
        "{v3}"
    );
    assert!(curl_on(&client, &url, &[]).unwrap().starts_with("pod-"));

    // pod-c relabelled v1: v2 selects no pod and answers 503, v1 now reaches all three.
    cluster.apply(
        "pods.yaml",
        &pods_and_endpoints(&cluster, &["v1", "v1", "v1"]),
    );
    let status =
        || curl_on(&client, &url, &["-o", "/dev/null", "-w", "%{http_code}"]).unwrap_or_default();
    datapath_support::wait_until("v2 has no pod left", READY, || status() == "503").unwrap();
    let answers: Vec<String> = (0..40)
        .map(|_| curl_on(&client, &url, &[]).unwrap_or_default())
        .filter(|a| a.starts_with("pod-"))
        .collect();
    assert!(
        tally(&answers).contains_key("pod-c"),
        "pod-c serves v1 now: {answers:?}"
    );
}
