//! One tunnel node as a process, for the namespace tests and `scripts/bench-tunnel.sh`.
//!
//! Besides the tunnel it can forward local ports into it (`--forward 127.0.0.1:7001=node/ip:port`,
//! `--forward-udp ...`) and write `/debug/peers` data to a file every 500 ms (`--peers-out`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use edgemesh_model::SnapshotCell;
use edgemesh_tunnel::snapshot_file::{AllowedEndpoint, snapshot_from_endpoints, with_nodes};
use edgemesh_tunnel::{
    CredentialFiles, NodeIdentityConfig, PskMode, RelayNode, Socks5Server, Tunnel, TunnelConfig,
    TunnelHandle, UnattestedPeers,
};
use tokio::net::{TcpListener, UdpSocket};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    node: String,
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    psk: Option<PathBuf>,
    /// Apply the PSK as EdgeMesh's Go agents do (pnet) instead of in the noise handshake.
    #[arg(long)]
    pnet: bool,
    /// QUIC next to TCP (`transport: quic`).
    #[arg(long)]
    quic: bool,
    #[arg(long)]
    pins: Option<PathBuf>,
    #[arg(long, default_value_t = edgemesh_tunnel::DEFAULT_LISTEN_PORT)]
    listen_port: u16,
    /// `name=ip[,ip]`, repeatable.
    #[arg(long)]
    relay: Vec<String>,
    /// JSON list of allowed endpoints (see `snapshot_file`).
    #[arg(long)]
    endpoints: Option<PathBuf>,
    #[arg(long)]
    own_addr: Vec<IpAddr>,
    #[arg(long)]
    no_mdns: bool,
    /// `listen=node/ip:port`, repeatable.
    #[arg(long)]
    forward: Vec<String>,
    #[arg(long)]
    forward_udp: Vec<String>,
    #[arg(long)]
    peers_out: Option<PathBuf>,
    /// `name=ip`: a Node and its InternalIP (what SOCKS5 resolves names with), repeatable.
    #[arg(long)]
    node_addr: Vec<String>,
    /// Serve SOCKS5 (access to nodes by name) on this address.
    #[arg(long)]
    socks5: Option<SocketAddr>,
    /// This node's certificate (PEM), to attest its name with; its key is `--cert-key`.
    #[arg(long, requires = "cert_key")]
    cert: Option<PathBuf>,
    #[arg(long)]
    cert_key: Option<PathBuf>,
    /// A CA certificate trusted to issue node certificates, repeatable.
    #[arg(long)]
    ca: Vec<PathBuf>,
    /// Seconds a tunnelled UDP flow may stay silent before the serving side ends it.
    #[arg(long, default_value_t = 60)]
    udp_idle_timeout: u64,
    /// What to do with peers that do not attest their name: auto, refuse or tofu.
    #[arg(long, default_value = "auto", value_parser = parse_unattested)]
    unattested: UnattestedPeers,
}

fn parse_unattested(s: &str) -> Result<UnattestedPeers, String> {
    match s {
        "auto" => Ok(UnattestedPeers::Auto),
        "refuse" => Ok(UnattestedPeers::Refuse),
        "tofu" => Ok(UnattestedPeers::TrustOnFirstUse),
        other => Err(format!("auto, refuse or tofu, got {other}")),
    }
}

/// The agent's allocator and runtime (`edgemesh_runtime` says why), so that memory figures
/// measured on this node hold for the agent.
#[global_allocator]
static ALLOCATOR: edgemesh_runtime::MiMalloc = edgemesh_runtime::MiMalloc;

fn main() -> anyhow::Result<()> {
    edgemesh_runtime::runtime()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let snapshot = match &args.endpoints {
        Some(path) => {
            let eps: Vec<AllowedEndpoint> = serde_json::from_slice(&std::fs::read(path)?)
                .with_context(|| format!("endpoints file {}", path.display()))?;
            snapshot_from_endpoints(&eps)
        }
        None => Default::default(),
    };
    let nodes = args
        .node_addr
        .iter()
        .map(|spec| {
            let (name, ip) = spec.split_once('=').context("--node-addr wants name=ip")?;
            Ok((name.to_owned(), ip.parse()?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let snapshot = with_nodes(snapshot, &nodes);
    let mut config = TunnelConfig::new(&args.node, &args.key);
    config.psk_path = args.psk.clone();
    if args.pnet {
        config.psk_mode = PskMode::Pnet;
    }
    config.pins_path = args.pins.clone();
    config.node_identity = NodeIdentityConfig {
        credential: args
            .cert
            .clone()
            .zip(args.cert_key.clone())
            .map(|(cert, key)| CredentialFiles { cert, key }),
        ca_files: args.ca.clone(),
        shared_cert_files: Vec::new(),
        unattested: args.unattested,
    };
    config.quic = args.quic;
    config.udp_idle_timeout = std::time::Duration::from_secs(args.udp_idle_timeout);
    config.listen_port = args.listen_port;
    config.relay_port = args.listen_port;
    config.mdns = !args.no_mdns;
    config.own_addrs = args.own_addr.clone();
    config.relays = args
        .relay
        .iter()
        .map(|r| parse_relay(r))
        .collect::<anyhow::Result<_>>()?;
    let tunnel = Tunnel::start(config, Arc::new(SnapshotCell::new(snapshot)))?;
    let handle = tunnel.handle();
    for spec in &args.forward {
        let (listen, node, target) = parse_forward(spec)?;
        tokio::spawn(forward_tcp(
            handle.clone(),
            TcpListener::bind(listen).await?,
            node,
            target,
        ));
    }
    for spec in &args.forward_udp {
        let (listen, node, target) = parse_forward(spec)?;
        tokio::spawn(forward_udp(
            handle.clone(),
            UdpSocket::bind(listen).await?,
            node,
            target,
        ));
    }
    if let Some(addr) = args.socks5 {
        let server = Socks5Server::bind(addr, handle.clone()).await?;
        tracing::info!(addr = ?server.local_addr(), "SOCKS5 listening");
        tokio::spawn(server.serve());
    }
    if let Some(path) = args.peers_out.clone() {
        tokio::spawn(write_peers(handle.clone(), path));
    }
    tracing::info!(peer.id = %handle.peer_id(), "forwarders ready");
    tokio::signal::ctrl_c().await?;
    tunnel.stop();
    Ok(())
}

fn parse_relay(spec: &str) -> anyhow::Result<RelayNode> {
    let Some((name, ips)) = spec.split_once('=') else {
        bail!("--relay wants name=ip[,ip], got {spec}")
    };
    let advertise_addresses = ips.split(',').map(str::parse).collect::<Result<_, _>>()?;
    Ok(RelayNode {
        node_name: name.into(),
        advertise_addresses,
    })
}

fn parse_forward(spec: &str) -> anyhow::Result<(SocketAddr, String, SocketAddr)> {
    let (listen, rest) = spec
        .split_once('=')
        .context("--forward wants listen=node/ip:port")?;
    let (node, target) = rest
        .split_once('/')
        .context("--forward wants listen=node/ip:port")?;
    Ok((listen.parse()?, node.to_owned(), target.parse()?))
}

async fn forward_tcp(
    handle: TunnelHandle,
    listener: TcpListener,
    node: String,
    target: SocketAddr,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        let (handle, node) = (handle.clone(), node.clone());
        tokio::spawn(async move {
            match handle.open_tcp(&node, target, None).await {
                Ok(mut stream) => {
                    let copied = edgemesh_copy::both_ways(
                        &mut client,
                        &mut stream,
                        &(),
                        edgemesh_copy::Options::default(),
                    )
                    .await;
                    if copied.is_err() {
                        // As the agent's proxy does: a lost tunnel reaches the client as a
                        // reset, not as a clean end.
                        edgemesh_copy::reset_on_close(&client);
                    }
                }
                Err(error) => tracing::warn!(%error, "forward failed"),
            }
        });
    }
}

/// One tunnelled flow per client address.
async fn forward_udp(handle: TunnelHandle, socket: UdpSocket, node: String, target: SocketAddr) {
    let socket = Arc::new(socket);
    // A flow leaves the map when it ends (the remote's idle timeout): a client port reused later
    // gets a new flow instead of a dead one.
    let flows = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut buf = vec![0u8; 65_535];
    while let Ok((n, client)) = socket.recv_from(&mut buf).await {
        let known = lock(&flows).get(&client).cloned();
        let flow = match known {
            Some(flow) => flow,
            None => {
                let Ok(flow) = handle.open_udp(&node, target, None).await else {
                    tracing::warn!("UDP forward failed");
                    continue;
                };
                let flow = Arc::new(flow);
                lock(&flows).insert(client, Arc::clone(&flow));
                let (flow2, socket2, flows2) =
                    (Arc::clone(&flow), Arc::clone(&socket), Arc::clone(&flows));
                tokio::spawn(async move {
                    while let Some(d) = flow2.recv().await {
                        let _ = socket2.send_to(&d, client).await;
                    }
                    lock(&flows2).remove(&client);
                });
                flow
            }
        };
        flow.send(&buf[..n]);
    }
}

/// The flows of [`forward_udp`] (a panic while holding them leaves a valid map).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn write_peers(handle: TunnelHandle, path: PathBuf) {
    loop {
        if let Ok(peers) = handle.peers().await
            && let Ok(json) = serde_json::to_vec_pretty(&peers)
        {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
