//! An outsider with stock libp2p QUIC (no PSK): dials a member's QUIC address and tries to open
//! a tunnel stream. The namespace tests check that the member refuses it.
//!
//! Prints `stream opened` if it got a tunnel stream (a hole in the membership check), or
//! `refused: <why>` if not; exits 0 either way once it knows, 2 on a usage error.

use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, quic};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: quic-probe /ip4/IP/udp/PORT/quic-v1");
        std::process::exit(2);
    };
    let addr: Multiaddr = addr.parse().context("not a multiaddr")?;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic_config(|config: quic::Config| config)
        .with_behaviour(|_| libp2p_stream::Behaviour::new())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    swarm.dial(addr)?;
    let control = swarm.behaviour().new_control();
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    println!("QUIC handshake done with {peer_id}");
                    let mut control = control.clone();
                    tokio::spawn(async move {
                        let opened = control
                            .open_stream(peer_id, edgemesh_tunnel::wire::PROXY_PROTOCOL)
                            .await;
                        match opened {
                            Ok(_) => println!("stream opened"),
                            Err(error) => println!("refused: stream: {error}"),
                        }
                    });
                }
                SwarmEvent::ConnectionClosed { cause, .. } => {
                    return format!("refused: connection closed ({cause:?})");
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return format!("refused: {error}");
                }
                _ => {}
            }
        }
    })
    .await;
    println!("{}", outcome.unwrap_or_else(|_| "refused: timeout".into()));
    Ok(())
}
