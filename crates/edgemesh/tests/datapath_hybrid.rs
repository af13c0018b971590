//! Issue acceptance (hybrid with kube-proxy): kube-proxy-style rules installed AFTER the agent
//! started — a `KUBE-SERVICES` chain jumped from nat PREROUTING and OUTPUT at position 1, with a
//! DNAT of the ClusterIP to a "wrong" server that answers `wrong-<pod>` — do not take the
//! agent's traffic: at once with nftables (hook priority), after the periodic order repair with
//! iptables. A Service labelled `service.edgemesh.kubeedge.io/service-proxy-name` stays with
//! kube-proxy: its DNAT is used and the agent has no rule for it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step should panic
mod datapath_support;

use std::time::{Duration, Instant};

use datapath_support::{Backend, Cluster, NodeAgent, Svc, tally};

const WEB: &str = "10.96.0.10";
const LABELLED: &str = "10.96.0.30";
/// Known to kube-proxy only: proves the fake kube-proxy rules are live.
const KUBE_ONLY: &str = "10.96.0.40";

/// kube-proxy (iptables mode)'s shape: its chain, its jumps inserted first in both hooks.
fn kube_proxy_rules() -> String {
    let dnat = |ip: &str, to: &str| {
        format!(
            "-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment \"shop svc\" -m tcp --dport 80 -j DNAT --to-destination {to}\n"
        )
    };
    let jump = "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
    format!(
        "*nat\n:KUBE-SERVICES - [0:0]\n{}{}{}-I PREROUTING 1 {jump}\n-I OUTPUT 1 {jump}\nCOMMIT\n",
        dnat(WEB, "192.0.2.11:8081"),
        dnat(LABELLED, "192.0.2.12:8080"),
        dnat(KUBE_ONLY, "192.0.2.11:8081"),
    )
}

fn start(tag: &str, backend: Backend) -> (Cluster, NodeAgent) {
    let cluster = Cluster::new(tag, 2);
    cluster.apply(
        "web.yaml",
        &Svc::new("web", WEB).endpoints(&cluster.pod_ips()).yaml(),
    );
    let labelled = Svc::new("legacy", LABELLED)
        .endpoints(&cluster.pod_ips()[1..])
        .label(
            "service.edgemesh.kubeedge.io/service-proxy-name",
            "kube-proxy",
        );
    cluster.apply("legacy.yaml", &labelled.yaml());
    let agent = cluster.start_agent(backend, "");
    cluster
        .client(
            "iptables-restore",
            &["--noflush", "-w", "5"],
            kube_proxy_rules().as_bytes(),
        )
        .unwrap();
    let nat = cluster.iptables_nat();
    assert!(
        nat.contains("-A OUTPUT -m comment --comment \"kubernetes service portals\""),
        "{nat}"
    );
    (cluster, agent)
}

fn web(cluster: &Cluster) -> String {
    cluster
        .curl(&format!("http://{WEB}/"), &[])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The labelled service is served by kube-proxy's DNAT; kube-proxy's rules are live.
fn assert_kube_proxy_keeps_its_own(cluster: &Cluster, backend: Backend) {
    assert_eq!(
        cluster
            .curl(&format!("http://{KUBE_ONLY}/"), &[])
            .as_deref(),
        Ok("wrong-pod-a")
    );
    assert_eq!(
        cluster.curl(&format!("http://{LABELLED}/"), &[]).as_deref(),
        Ok("pod-b")
    );
    let ours = match backend {
        Backend::Nftables => cluster.nft_set(),
        Backend::Iptables => {
            let nat = cluster.iptables_nat();
            nat.lines()
                .filter(|l| l.contains("KUBE-PORTALS"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    assert!(ours.contains(WEB) && !ours.contains(LABELLED), "{ours}");
}

#[test]
fn agent_hybrid_nftables_wins_over_kube_proxy_at_once() {
    let (cluster, agent) = start("hy-nft", Backend::Nftables);
    let counts = tally(&cluster.curl_many(&format!("http://{WEB}/"), 20, &[]));
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["pod-a", "pod-b"],
        "{counts:?}"
    );
    assert_kube_proxy_keeps_its_own(&cluster, Backend::Nftables);
    assert_eq!(agent.metric("edgemesh_proxier_order_repairs_total"), 0.0);
}

#[test]
fn agent_hybrid_iptables_repairs_the_jump_order_within_12s() {
    let (cluster, mut agent) = start("hy-ipt", Backend::Iptables);
    let installed = Instant::now();
    // Position 1 belongs to kube-proxy now: the wrong path is taken until the repair.
    assert_eq!(
        web(&cluster),
        "wrong-pod-a",
        "kube-proxy's jump did not take over"
    );
    let mut answer = String::new();
    while installed.elapsed() < Duration::from_secs(13) {
        answer = web(&cluster);
        if !answer.starts_with("wrong") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = installed.elapsed();
    eprintln!("iptables: back through the agent {took:?} after kube-proxy's jump went first");
    assert!(
        answer.starts_with("pod-"),
        "still {answer:?} after {took:?}:\n{}",
        agent.logs()
    );
    agent.wait_log(
        "moved edgemesh's chains first again",
        Duration::from_secs(1),
    );
    assert!(agent.metric("edgemesh_proxier_order_repairs_total") >= 1.0);
    let nat = cluster.iptables_nat();
    let output: Vec<&str> = nat.lines().filter(|l| l.starts_with("-A OUTPUT")).collect();
    assert!(output[0].ends_with("-j KUBE-PORTALS-HOST"), "{nat}");
    let counts = tally(&cluster.curl_many(&format!("http://{WEB}/"), 20, &[]));
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        ["pod-a", "pod-b"],
        "{counts:?}"
    );
    assert_kube_proxy_keeps_its_own(&cluster, Backend::Iptables);
}
