//! Arbitrary bytes through the server's own parse → handler path (`handle_packet`), over UDP and
//! TCP framing rules, with a Snapshot holding a few services and no upstreams (forwarded names
//! fail at once with SERVFAIL). Properties: no panic, no hang, and any answer parses back as a
//! response carrying the request's id.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use edgemesh_dns::{DnsConfig, DnsHandler, DnsMetrics, Protocol, Resolver, handle_packet};
use edgemesh_model::fixtures::{cluster_ip_service, endpoint_slice};
use edgemesh_model::{BuildOptions, Catalog, Resource, SnapshotCell, SourceId};
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    handler: DnsHandler,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut catalog = Catalog::new();
        let ip: IpAddr = "10.96.0.10".parse().unwrap();
        let web = cluster_ip_service("ns", "web", ip, 80);
        let slice = endpoint_slice(&web, &[("10.244.0.1".parse().unwrap(), "n1")], 8080);
        catalog.upsert(SourceId::Manifests, Resource::EndpointSlice(slice.into()));
        catalog.upsert(SourceId::Manifests, Resource::Service(web.into()));
        let snapshot = catalog.build_snapshot(BuildOptions::default()).0;
        let cell = Arc::new(SnapshotCell::new(snapshot));
        let resolver =
            Resolver::new(&DnsConfig::default(), cell, Arc::new(DnsMetrics::default())).unwrap();
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            handler: DnsHandler::new(resolver),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let src: SocketAddr = "192.0.2.10:5353".parse().unwrap();
    let protocol = if data.first().is_some_and(|b| b & 1 == 1) {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    let answer = world
        .runtime
        .block_on(handle_packet(&world.handler, data, src, protocol));
    if let Some(bytes) = answer {
        assert_eq!(bytes[..2], data[..2], "answer carries the request id");
        assert!(bytes[2] & 0x80 != 0, "answer is a response");
    }
});
