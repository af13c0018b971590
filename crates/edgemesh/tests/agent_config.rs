//! Issue acceptance: configuration errors exit 2 with a message naming key, value and what is
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
//! allowed, before anything on the host is touched; EdgeMesh's own config files are accepted.
mod common;

use std::process::Command;

use common::{Agent, netns};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../edgemesh-config/tests/fixtures"
);

fn run_agent(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgemesh"))
        .arg("agent")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_file(body: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let header = "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nkind: EdgeMeshAgent\n";
    std::fs::write(file.path(), format!("{header}{body}")).unwrap();
    file
}

#[test]
fn invalid_values_exit_2_naming_key_value_and_allowed() {
    let cases = [
        (
            "modules:\n  edgeProxy:\n    serviceFilterMode: foo\n",
            "modules.edgeProxy.serviceFilterMode: invalid value 'foo' (allowed: FilterIfLabelExists, FilterIfLabelDoesNotExists)",
        ),
        (
            "modules:\n  edgeTunnel:\n    transport: carrier-pigeon\n",
            "modules.edgeTunnel.transport: invalid value 'carrier-pigeon' (allowed: tcp, ws, quic)",
        ),
        (
            "kubeAPIConfig:\n  kubeConfig: /does/not/exist\n",
            "kubeAPIConfig.kubeConfig: file '/does/not/exist' does not exist",
        ),
    ];
    for (body, message) in cases {
        let file = config_file(body);
        let (code, stderr) = run_agent(&["--config", file.path().to_str().unwrap()]);
        assert_eq!(code, 2, "{body}: {stderr}");
        assert!(
            stderr.contains(message),
            "{body}: expected '{message}' in:\n{stderr}"
        );
    }
    let (code, stderr) = run_agent(&["--kubeconfig", "/nope"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--kubeconfig: file '/nope' does not exist"),
        "{stderr}"
    );
}

#[test]
fn all_errors_are_reported_at_once_and_nothing_starts() {
    let file = config_file(
        "modules:\n  edgeProxy:\n    serviceFilterMode: foo\n  edgeTunnel:\n    transport: x\n",
    );
    let (code, stderr) = run_agent(&["--config", file.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("invalid configuration"))
            .count(),
        2,
        "{stderr}"
    );
    assert!(!stderr.contains("starting edgemesh agent"), "{stderr}");
}

#[test]
fn agent_runs_with_edgemesh_shipped_config_and_warns_on_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().to_str().unwrap();
    // As shipped, plus the PSK the DaemonSet mounts at /etc/edgemesh/psk, here in a temp file
    // (its edgeTunnel is on, so the agent reads the key).
    let secrets = tempfile::tempdir().unwrap();
    let psk = secrets.path().join("psk");
    std::fs::write(&psk, "a pre-shared key\n").unwrap();
    let tunnel_on = "  edgeTunnel:\n    enable: true\n";
    // The fixture is verbatim, CRLF line ends included.
    let text = std::fs::read_to_string(format!("{FIXTURES}/edgemesh-shipped-configmap.yaml"))
        .unwrap()
        .replace("\r\n", "\n");
    assert!(text.contains(tunnel_on), "the shipped config changed shape");
    let with_psk = format!("{tunnel_on}    psk:\n      path: {}\n", psk.display());
    let shipped_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(shipped_file.path(), text.replace(tunnel_on, &with_psk)).unwrap();
    let shipped = shipped_file.path().to_str().unwrap().to_owned();
    let agent = Agent::start(
        netns("cfg"),
        &["--config", &shipped, "--manifests", manifests],
    )
    .ready();
    assert!(!agent.logs().contains("unknown key"), "{}", agent.logs());

    let file = config_file("modules:\n  edgeProxy:\n    enable: true\n    fooBar: 1\n");
    let args = [
        "--config",
        file.path().to_str().unwrap(),
        "--manifests",
        manifests,
    ];
    let agent = Agent::start(netns("cfg"), &args).ready();
    assert!(
        agent.logs().contains("modules.edgeProxy.fooBar"),
        "{}",
        agent.logs()
    );
}

/// EdgeMesh's full documented example names /root/.kube/config; `--kubeconfig` overrides it
/// with a real kubeconfig for the apiserver double, which the agent then watches.
#[test]
fn agent_runs_with_edgemesh_docs_example_and_a_kubeconfig() {
    let ns = netns("kcfg");
    let listener = ns
        .run(|| std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let api = edgemesh_testkit::apiserver::ApiServer::from_listener(listener).unwrap();
    api.apply(common::service_json("shop", "web", "10.96.0.10", 80))
        .unwrap();
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        kubeconfig.path(),
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters: [{{name: test, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: test, user: {{}}}}]\n\
             contexts: [{{name: test, context: {{cluster: test, user: test}}}}]\n",
            api.url()
        ),
    )
    .unwrap();
    let docs = format!("{FIXTURES}/edgemesh-docs-full.yaml");
    let args = [
        "--config",
        &docs,
        "--kubeconfig",
        kubeconfig.path().to_str().unwrap(),
    ];
    let agent = Agent::start(ns, &args).ready();
    assert!(
        common::has_service(&agent.snapshot(), "shop/web"),
        "{}",
        agent.logs()
    );
}

/// The tunnel's PSK is read before anything on the host is touched: a missing file stops the
/// agent at once with a message naming the file and the key.
#[test]
fn agent_with_the_tunnel_and_no_psk_file_exits_naming_it() {
    let file =
        config_file("modules:\n  edgeTunnel:\n    enable: true\n    psk:\n      path: /no/psk\n");
    let state = tempfile::tempdir().unwrap();
    // In a namespace of its own and bounded: were the check missing, the tunnel would listen.
    let out = netns("psk")
        .exec(
            "timeout",
            &[
                "10",
                env!("CARGO_BIN_EXE_edgemesh"),
                "agent",
                "--config",
                file.path().to_str().unwrap(),
                "--state-dir",
                state.path().to_str().unwrap(),
            ],
        )
        .unwrap();
    let (code, stderr) = (out.status.code(), String::from_utf8_lossy(&out.stderr));
    assert!(
        code.is_some_and(|c| c != 0 && c != 124),
        "{code:?}: {stderr}"
    );
    assert!(
        stderr.contains("cannot read PSK file /no/psk") && stderr.contains("psk.path"),
        "{stderr}"
    );
    assert!(!stderr.contains("programming ClusterIP"), "{stderr}");
}

/// Issue #17, item 3: the agent kept the inherited soft limit on open files (1,024 is common)
/// and ran out under load although the hard limit allowed more; it raises it at start.
#[test]
fn agent_raises_its_open_file_limit_to_the_hard_limit() {
    let ns = netns("nofile");
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--nofile=1024:4096",
        env!("CARGO_BIN_EXE_edgemesh"),
        "agent",
        "--manifests",
        dir.path().to_str().unwrap(),
        "--admin-addr",
        "127.0.0.1:0",
        "--node-name",
        "n",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ];
    let mut agent = edgemesh_testkit::process::Process::start("prlimit", &args, Some(&ns)).unwrap();
    agent
        .wait_ready(common::READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.logs()));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{open_files}");
}
