//! The tunnel: the PSK file, the relays, and the peers the agent holds (`/debug/peers`).
//!
//! A wrong PSK is told apart from an unreachable relay by the tunnel's count of failed
//! handshakes (`edgemesh_tunnel_handshake_failures_total`: the PSK, or `psk.mode`, is the only
//! part of the handshake two honest members can disagree on), and by reachability: a relay that
//! accepts a TCP connection on its tunnel port while the agent holds none to it.

use serde::Deserialize;

use crate::gather::{Fetched, RelayProbe};
use crate::plan::TunnelPlan;
use crate::report::Finding;

const PSK: &str = "tunnel.psk";
const PEERS: &str = "tunnel.peers";
/// The tunnel's counter of failed handshakes, as `/metrics` shows it.
pub const HANDSHAKE_FAILURES: &str = "edgemesh_tunnel_handshake_failures_total";
const PSK_FIX: &str = "use the same PSK file and the same modules.edgeTunnel.psk.mode (noise, or pnet with EdgeMesh's Go agents) on every node; the agent logs `handshake failed` with a hint=";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peer {
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    path: String,
    #[serde(default)]
    is_relay: bool,
}

pub fn psk(tunnel: Option<&TunnelPlan>, file: Option<&Result<u64, String>>) -> Finding {
    let Some(tunnel) = tunnel else {
        return Finding::skip(PSK, "modules.edgeTunnel is off");
    };
    let Some(path) = &tunnel.psk_path else {
        return Finding::warn(
            PSK,
            "modules.edgeTunnel.psk.enable is false: any libp2p node that reaches the tunnel port can join the mesh",
            "openssl rand -base64 32 > /etc/edgemesh/psk on one node, copy it to every node, set psk.enable: true and psk.path",
        );
    };
    let fix = format!(
        "mount the same PSK file on every node at {} (EdgeMesh's chart: the edgemesh-agent-psk Secret), e.g. openssl rand -base64 32",
        path.display()
    );
    match file {
        Some(Ok(0)) => Finding::fail(PSK, format!("{} is empty", path.display()), fix),
        Some(Ok(n)) => Finding::pass(
            PSK,
            format!("{} holds a key ({n} characters)", path.display()),
        ),
        Some(Err(e)) => Finding::fail(PSK, e.clone(), fix),
        None => Finding::fail(PSK, format!("{} was not read", path.display()), fix),
    }
}

/// One finding per relay other than this node.
pub fn relays(tunnel: Option<&TunnelPlan>, node_name: &str, probes: &[RelayProbe]) -> Vec<Finding> {
    const CHECK: &str = "tunnel.relay";
    let Some(tunnel) = tunnel else {
        return Vec::new();
    };
    let others: Vec<_> = tunnel.other_relays(node_name).collect();
    if others.is_empty() {
        let message = match tunnel.is_relay(node_name) {
            true => "this node is the only relay in relayNodes".to_owned(),
            false => "no relayNodes: only peers on this LAN (mDNS) are found; nodes behind another NAT are not".to_owned(),
        };
        return vec![Finding::skip(CHECK, message)];
    }
    others
        .into_iter()
        .map(|relay| {
            let check = format!("{CHECK} {}", relay.node_name);
            let mine: Vec<&RelayProbe> = probes.iter().filter(|p| p.node_name == relay.node_name).collect();
            if let Some(ok) = mine.iter().find(|p| p.result.is_ok()) {
                return Finding::pass(&check, format!("{} accepts TCP on the tunnel port", ok.addr));
            }
            let tried: Vec<String> = mine
                .iter()
                .map(|p| format!("{}: {}", p.addr, p.result.as_ref().err().map_or("", String::as_str)))
                .collect();
            let message = match tried.is_empty() {
                true => "no advertiseAddress to reach it at".to_owned(),
                false => format!("unreachable: {}", tried.join("; ")),
            };
            Finding::fail(
                &check,
                message,
                format!("the relay's advertiseAddress must be an address this node can reach, with tcp/{} open on the relay (modules.edgeTunnel.listenPort) and its agent running", tunnel.listen_port),
            )
        })
        .collect()
}

pub fn peers(
    tunnel: Option<&TunnelPlan>,
    node_name: &str,
    fetched: &Fetched,
    probes: &[RelayProbe],
    handshake_failures: Option<u64>,
) -> Finding {
    let Some(tunnel) = tunnel else {
        return Finding::skip(PEERS, "modules.edgeTunnel is off");
    };
    let peers: Vec<Peer> = match fetched {
        Ok((200, body)) => match serde_json::from_str(body) {
            Ok(peers) => peers,
            Err(e) => {
                return Finding::warn(
                    PEERS,
                    format!("/debug/peers is not a peer list ({e}): {}", body.trim()),
                    "",
                );
            }
        },
        Ok((404, _)) => {
            return Finding::fail(
                PEERS,
                "the agent runs without the tunnel, though this config enables it",
                "the agent was started with another config file: restart it with this one (or pass the agent's file with --config)",
            );
        }
        Ok((status, body)) => {
            return Finding::warn(PEERS, format!("/debug/peers {status}: {}", body.trim()), "");
        }
        Err(_) => {
            return Finding::skip(
                PEERS,
                "the admin endpoint does not answer (see agent.health)",
            );
        }
    };
    let relays_configured = tunnel.other_relays(node_name).count() > 0;
    let relay_connected = peers.iter().any(|p| p.is_relay);
    if relays_configured && !relay_connected {
        return no_relay(peers.len(), probes, handshake_failures);
    }
    if peers.is_empty() {
        return Finding::warn(
            PEERS,
            "no peers connected",
            match tunnel.is_relay(node_name) {
                true => {
                    "this node is a relay: other nodes connect to it once their agents run with the same PSK"
                }
                false => {
                    "nodes in other LANs need relayNodes (docs/tunnel.md); on one LAN they find each other by mDNS"
                }
            },
        );
    }
    let list: Vec<String> = peers
        .iter()
        .map(|p| format!("{} ({})", p.node_name.as_deref().unwrap_or("?"), p.path))
        .collect();
    Finding::pass(PEERS, format!("{} peers: {}", peers.len(), list.join(", ")))
}

/// Relays are configured and none is connected: unreachable, or the handshake fails.
fn no_relay(peer_count: usize, probes: &[RelayProbe], handshake_failures: Option<u64>) -> Finding {
    let reachable: Vec<&RelayProbe> = probes.iter().filter(|p| p.result.is_ok()).collect();
    let prefix = match peer_count {
        0 => "no peer in the table and no relay connected".to_owned(),
        n => format!("{n} peers but no relay connected"),
    };
    if let Some(n @ 1..) = handshake_failures {
        return Finding::fail(
            PEERS,
            format!("{prefix}: {n} tunnel handshakes failed: wrong PSK (or psk.mode)"),
            PSK_FIX,
        );
    }
    match reachable.first() {
        Some(relay) => Finding::fail(
            PEERS,
            format!(
                "{prefix}, though relay {} accepts TCP at {}: the tunnel handshake fails, most likely a wrong PSK (or psk.mode)",
                relay.node_name, relay.addr
            ),
            PSK_FIX,
        ),
        None => Finding::fail(
            PEERS,
            format!(
                "{prefix}: wrong PSK or relay unreachable (no relay accepts TCP: see tunnel.relay)"
            ),
            "make a relay reachable at its advertiseAddress (tcp on modules.edgeTunnel.listenPort), and use the same PSK file on every node",
        ),
    }
}

#[cfg(test)]
mod tests;
