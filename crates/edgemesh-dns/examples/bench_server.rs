//! A DNS server over a synthetic Snapshot, for `scripts/bench-dns.sh`.
//!
//! `bench_server LISTEN UPSTREAM SERVICES` serves `svc-I.bench.svc.cluster.local` (I < SERVICES,
//! ClusterIP 10.96.x.y, two endpoints each) and forwards the rest to UPSTREAM. Before serving it
//! prints the resident memory: empty, with the Snapshot stored, and after the PTR index is built.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use edgemesh_dns::{DnsConfig, DnsMetrics, DnsServer, Protocol, handle_packet};
use edgemesh_model::{BuildOptions, SnapshotCell, fixtures::large_catalog};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

fn rss_kib() -> u64 {
    edgemesh_telemetry::self_status_bytes("VmRSS").unwrap_or(0) / 1024
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, services] = args.as_slice() else {
        anyhow::bail!("usage: bench_server LISTEN UPSTREAM SERVICES");
    };
    let listen: SocketAddr = listen.parse().context("LISTEN")?;
    let upstream: SocketAddr = upstream.parse().context("UPSTREAM")?;
    let services: u32 = services.parse().context("SERVICES")?;
    let config = DnsConfig {
        listen: vec![listen],
        upstreams: vec![upstream],
        ..DnsConfig::default()
    };
    let cell = Arc::new(SnapshotCell::default());
    let server = DnsServer::bind(&config, cell.clone(), Arc::new(DnsMetrics::default())).await?;
    let empty = rss_kib();
    let catalog = large_catalog(services, 2);
    let snapshot = catalog.build_snapshot(BuildOptions::default()).0;
    drop(catalog);
    cell.store(Arc::new(snapshot));
    let with_snapshot = rss_kib();
    let mut ptr = Message::query();
    ptr.add_query(Query::query(
        Name::from_ascii("0.0.96.10.in-addr.arpa.")?,
        RecordType::PTR,
    ));
    let src: SocketAddr = "127.0.0.1:9".parse()?;
    handle_packet(server.handler(), &ptr.to_vec()?, src, Protocol::Udp).await;
    let with_index = rss_kib();
    eprintln!(
        "rss_kib empty={empty} snapshot={with_snapshot} ptr_index={with_index} services={services}"
    );
    server.run(std::future::pending()).await?;
    Ok(())
}
