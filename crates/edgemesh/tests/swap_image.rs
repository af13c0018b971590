//! Issue acceptance (#12, "swap the image"): EdgeMesh's own ConfigMaps — its manifest
//! `04-configmap.yaml` and its Helm chart rendered with default and with every value — start the
//! agent exactly as EdgeMesh's DaemonSet does: the image's entry point `edgemesh-agent` with no
//! arguments, the ConfigMap keys as files under /etc/edgemesh (as kubelet mounts them), NODE_NAME
//! from the pod spec, and the KubeEdge metaServer on 127.0.0.1:10550.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{READY_TIMEOUT, backends, netns, service_json};
use edgemesh_testkit::apiserver::ApiServer;
use edgemesh_testkit::netns::Netns;
use edgemesh_testkit::process::Process;
use serde_json::Value;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../edgemesh-config/tests/fixtures"
);

/// The key under which EdgeMesh's ConfigMap holds the agent's config file.
const CONFIG_KEY: &str = "edgemesh-agent.yaml";

/// The data of ConfigMap `name` in a multi-document manifest file.
fn configmap_data(manifest: &str, name: &str) -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let found = docs
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{manifest} has no ConfigMap {name}"));
    found["data"].as_object().cloned().unwrap_or_default()
}

/// What a container of EdgeMesh's DaemonSet sees: the host's /etc and /var/lib with the pod's
/// volumes on top (overlays in a mount namespace of the agent's own: nothing reaches the host).
struct PodFiles {
    root: tempfile::TempDir,
}

impl PodFiles {
    fn new() -> PodFiles {
        let root = tempfile::tempdir().unwrap();
        for dir in [
            "etc/upper",
            "etc/work",
            "varlib/upper",
            "varlib/work",
            "bin",
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        // The image's entry point: `edgemesh-agent`, a link to the one binary.
        symlink(
            env!("CARGO_BIN_EXE_edgemesh"),
            root.path().join("bin/edgemesh-agent"),
        )
        .unwrap();
        PodFiles { root }
    }

    /// Writes `text` at `path` (absolute, under /etc) as the pod sees it.
    fn etc_file(&self, path: &str, text: &str) {
        let rel = path.strip_prefix("/etc/").expect("a path under /etc");
        let file = self.root.path().join("etc/upper").join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// `edgemesh-agent` with no arguments, as the DaemonSet starts the image.
    fn start_agent(&self, ns: &Netns, node_name: &str) -> Process {
        let overlay = |name: &str, target: &str| {
            format!(
                "mount -t overlay overlay -o lowerdir={target},upperdir={},workdir={} {target}",
                self.dir(&format!("{name}/upper")).display(),
                self.dir(&format!("{name}/work")).display()
            )
        };
        let script = format!(
            "{} && {} && exec edgemesh-agent",
            overlay("etc", "/etc"),
            overlay("varlib", "/var/lib")
        );
        let path = format!(
            "{}:{}",
            self.dir("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let args = ["--mount", "--propagation", "private", "sh", "-c", &script];
        let env = [
            ("PATH", path.as_str()),
            ("NODE_NAME", node_name),
            ("NAMESPACE", "kubeedge"),
        ];
        Process::start_with("unshare", &args, Some(ns), &env).unwrap()
    }
}

/// The apiserver double where an edge node's agent looks by default, behaving as KubeEdge's
/// metaServer (500 for API discovery, core Endpoints).
fn meta_server(ns: &Netns) -> ApiServer {
    let listener = ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:10550"))
        .unwrap();
    let api = ApiServer::builder()
        .meta_server()
        .start_on(listener)
        .unwrap();
    let mut service = service_json("shop", "web", "10.96.0.10", 80);
    // Proxied under either serviceFilterMode.
    service["metadata"]["labels"] =
        serde_json::json!({"service.edgemesh.kubeedge.io/service-proxy-name": "edgemesh"});
    api.apply(service).unwrap();
    api.apply(serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "shop"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5"}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]
    }))
    .unwrap();
    api
}

/// Mounts the ConfigMaps of `manifest` as EdgeMesh's DaemonSet does, starts the agent, and
/// returns it once ready with the metaServer's service in its Snapshot.
fn agent_from(manifest: &str, extra_files: &[(&str, String)], ns: Netns) -> (Process, Netns) {
    let psk = configmap_data(manifest, "edgemesh-agent-psk")["psk"]
        .as_str()
        .unwrap()
        .to_owned();
    agent_with_psk(manifest, &psk, extra_files, ns)
}

fn agent_with_psk(
    manifest: &str,
    psk: &str,
    extra_files: &[(&str, String)],
    ns: Netns,
) -> (Process, Netns) {
    let files = PodFiles::new();
    let config = configmap_data(manifest, "edgemesh-agent-cfg");
    files.etc_file(
        "/etc/edgemesh/config/edgemesh-agent.yaml",
        config[CONFIG_KEY].as_str().unwrap(),
    );
    files.etc_file("/etc/edgemesh/psk", psk);
    for (path, text) in extra_files {
        files.etc_file(path, text);
    }
    let started = Instant::now();
    let mut agent = files.start_agent(&ns, "edge-node-1");
    if let Err(e) = agent.wait_ready(READY_TIMEOUT) {
        panic!("{manifest}: not ready: {e}\n--- log:\n{}", agent.logs());
    }
    eprintln!("{manifest}: ready in {:?}", started.elapsed());
    let (status, body) = agent.http_get("/debug/snapshot").unwrap();
    assert_eq!(status, 200, "{body}");
    let snapshot: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        backends(&snapshot, "shop/web"),
        ["10.244.1.5:8080"],
        "{manifest}\n{snapshot:#}\n--- log:\n{}",
        agent.logs()
    );
    let logs = agent.logs();
    assert!(
        !logs.contains("ERROR") && !logs.contains("invalid configuration"),
        "{manifest}:\n{logs}"
    );
    drop(files);
    (agent, ns)
}

#[test]
fn edgemesh_manifest_configmap_starts_the_image_with_no_args() {
    let ns = netns("swap04");
    let _api = meta_server(&ns);
    let manifest = format!("{FIXTURES}/edgemesh-manifests/04-configmap.yaml");
    let (agent, _ns) = agent_from(&manifest, &[], ns);
    let logs = agent.logs();
    assert!(
        logs.contains("KubeEdge metaServer") || logs.contains("127.0.0.1:10550"),
        "{logs}"
    );
    assert!(logs.contains("tunnel started"), "{logs}");
}

#[test]
fn edgemesh_helm_chart_defaults_start_the_image_with_no_args() {
    let ns = netns("swaphd");
    let _api = meta_server(&ns);
    let manifest = format!("{FIXTURES}/edgemesh-helm/rendered-defaults.yaml");
    let (agent, _ns) = agent_from(&manifest, &[], ns);
    assert!(agent.logs().contains("tunnel started"), "{}", agent.logs());
}

/// Every value of the chart set: `serviceFilterMode` written twice, relays named `R1`/`R2`, a
/// kubeconfig (which wins over `master`), the edge CNI on. Warnings, never a refusal.
#[test]
fn edgemesh_helm_chart_with_every_value_starts_the_image_with_no_args() {
    let ns = netns("swapha");
    let api = meta_server(&ns);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         clusters: [{{name: c, cluster: {{server: \"{}\"}}}}]\n\
         users: [{{name: u, user: {{}}}}]\n\
         contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\n",
        api.url()
    );
    let manifest = format!("{FIXTURES}/edgemesh-helm/rendered-all.yaml");
    let extra = [("/etc/edgemesh/kubeconfig", kubeconfig)];
    let (agent, _ns) = agent_from(&manifest, &extra, ns);
    let logs = agent.logs();
    for expected in [
        "modules.edgeProxy.serviceFilterMode: written twice (lines 31 and 40)",
        "modules.edgeCNI.enable",
        "kubeAPIConfig.master",
        "modules.edgeTunnel.maxCandidates",
        "tunnel started",
    ] {
        assert!(logs.contains(expected), "'{expected}' not in:\n{logs}");
    }
    assert_eq!(
        logs.matches("written twice").count(),
        1,
        "warned once:\n{logs}"
    );
}

/// Our own `deploy/agent.yaml`: EdgeMesh's DaemonSet shape (no command or args, the same mounts
/// plus state and node certificates), and its ConfigMap starts the image as the DaemonSet does.
#[test]
fn our_deploy_manifest_keeps_edgemesh_shape_and_starts() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/agent.yaml");
    let text = std::fs::read_to_string(manifest).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let daemonset = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let container = &daemonset["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["command"].is_null() && container["args"].is_null(),
        "{container}"
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for path in [
        "/etc/edgemesh/config",
        "/etc/edgemesh",
        "/etc/resolv.conf",
        "/etc/localtime",
        "/etc/edgemesh/metaserver",
        "/var/lib/edgemesh",
        "/var/lib/kubelet/pki",
        "/etc/kubeedge/certs",
    ] {
        assert!(mounts.contains(&path), "{path} not mounted: {mounts:?}");
    }
    // The migration patch adds exactly these volumes to EdgeMesh's DaemonSet: the two files
    // must not drift apart.
    let patch = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/migrate-patch.yaml"
    );
    let patch: Value = serde_saphyr::from_str(&std::fs::read_to_string(patch).unwrap()).unwrap();
    let pod = &daemonset["spec"]["template"]["spec"];
    for volume in patch["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
    {
        let ours = pod["volumes"].as_array().unwrap();
        assert!(
            ours.contains(volume),
            "{volume} differs from deploy/agent.yaml"
        );
    }
    let patched = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(patched["name"], container["name"]);
    for mount in patched["volumeMounts"].as_array().unwrap() {
        let ours = container["volumeMounts"].as_array().unwrap();
        assert!(
            ours.contains(mount),
            "{mount} differs from deploy/agent.yaml"
        );
    }
    let ns = netns("swapdep");
    let _api = meta_server(&ns);
    agent_with_psk(manifest, "a pre-shared key", &[], ns);
}

/// EdgeMesh's flags (`--config-file`, klog's `--v`) are taken under the image's entry point names,
/// the agent's and the gateway's alike; the error names the file that is missing.
#[test]
fn entry_point_names_take_edgemesh_flags() {
    let files = PodFiles::new();
    let agent = files.dir("bin/edgemesh-agent");
    let out = run(&agent, &["--config-file", "/no/such.yaml", "--v=4"]);
    assert_eq!(out.0, 2, "{}", out.1);
    assert!(out.1.contains("/no/such.yaml"), "{}", out.1);
    let out = run(&agent, &["--help"]);
    assert_eq!(out.0, 0);
    let out = run(&agent, &["version"]);
    assert!(out.0 == 0, "{}", out.1);
    let gateway = files.dir("bin/edgemesh-gateway");
    symlink(env!("CARGO_BIN_EXE_edgemesh"), &gateway).unwrap();
    let out = run(&gateway, &["--config-file", "/no/gateway.yaml", "--v=4"]);
    assert_eq!(out.0, 2, "{}", out.1);
    assert!(out.1.contains("edgemesh gateway"), "{}", out.1);
    assert!(out.1.contains("/no/gateway.yaml"), "{}", out.1);
    let out = run(&gateway, &["--help"]);
    assert_eq!(out.0, 0, "{}", out.1);
}

fn run(program: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(program)
        .args(args)
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `--check-config` on a ConfigMap's file before the swap: warnings printed, exit 0 when the agent
/// would start, 2 (with the reason) when it would refuse; nothing else happens.
#[test]
fn check_config_judges_a_configmap_before_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let check = |manifest: &str| {
        let config = configmap_data(manifest, "edgemesh-agent-cfg");
        let file = dir.path().join("edgemesh-agent.yaml");
        std::fs::write(&file, config[CONFIG_KEY].as_str().unwrap()).unwrap();
        let args = [
            "agent",
            "--check-config",
            "--config",
            file.to_str().unwrap(),
        ];
        run(Path::new(env!("CARGO_BIN_EXE_edgemesh")), &args)
    };
    let (code, out) = check(&format!("{FIXTURES}/edgemesh-helm/rendered-defaults.yaml"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("configuration is valid"), "{out}");
    // Every value set: the duplicate is a warning; the kubeconfig it names is not on this host.
    let (code, out) = check(&format!("{FIXTURES}/edgemesh-helm/rendered-all.yaml"));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("kubeAPIConfig.kubeConfig: file '/etc/edgemesh/kubeconfig' does not exist"),
        "{out}"
    );
}
