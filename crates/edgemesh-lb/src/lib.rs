//! Load balancing: which backend of a service port serves a new connection or request.
//!
//! The [`Balancer`] trait is the seam the proxy calls; [`LoadBalancer`] is the implementation.
//! Decisions are pure apart from the random number generator ([`RandomSource`]) and the clock
//! ([`Clock`]), which are injected; production uses [`ThreadRng`] and [`SystemClock`].
//!
//! # Policies and how they map to EdgeMesh and Istio
//!
//! Precedence: a Service with `sessionAffinity: ClientIP` uses affinity whatever its
//! DestinationRule says (the model already resolved that conflict in favour of affinity);
//! otherwise the DestinationRule's `trafficPolicy.loadBalancer` ([`LbPolicy`]) applies, and
//! without one, round robin.
//!
//! | policy | Istio / Kubernetes spelling | behaviour here |
//! |---|---|---|
//! | round robin | `simple: ROUND_ROBIN`, the default | one shared cursor per frontend: `n × k` picks over `k` backends give each exactly `n`. The cursor starts at a random position when the backend set changes (EdgeMesh shuffles its endpoint list instead; same effect: agents do not all start on the first backend). |
//! | random | `simple: RANDOM` | uniform over the backends not excluded. |
//! | consistent hash | `consistentHash: {useSourceIp: true}` or `{httpHeaderName: X}` | EdgeMesh's ring (buraksezer/consistent: `partitionCount`, `replicationFactor`, `load` from `modules.edgeProxy.loadBalancer.consistentHash`, see [`ConsistentHashConfig`]) plus a bound on *live connections*: a backend holding `ceil(load × (live + 1) / backends)` is passed over for the next one clockwise. Differences from EdgeMesh, on purpose: the source-IP key is the IP alone (EdgeMesh hashes `ip:port`, so its "source IP" hashing changes backend with every connection); a missing header falls back to the source IP (EdgeMesh hashes the empty string, sending all such clients to one backend). |
//! | ClientIP affinity | Service `sessionAffinity: ClientIP`, `timeoutSeconds` | as kube-proxy: the first pick of a client IP goes by round robin, later picks return the same backend until `timeoutSeconds` have passed since its *last* use, or the backend leaves the set (or failed for this connection, in which case the client is re-stuck to the replacement). |
//!
//! Every policy honours [`PickContext::exclude`] (backends that already failed for this
//! connection) and returns `None` when no backend is left.
//!
//! # State and cost
//!
//! State lives per [`Frontend`] in a sharded map and survives Snapshot rebuilds: when a port's
//! `Arc<[Backend]>` changes, its tables are rebuilt lazily on the next pick (only if the contents
//! differ), keeping the live-connection counters of the backends that remain. Call
//! [`LoadBalancer::prune`] after each new Snapshot to drop frontends that are gone. Affinity
//! entries expire lazily (a few per pick) and are capped per frontend
//! ([`MAX_AFFINITY_ENTRIES`]). A pick takes one shard read lock, no allocation in the steady
//! state, and — for affinity only — the frontend's affinity mutex for a few hash-map operations.
#![forbid(unsafe_code)]

mod affinity;
mod balancer;
mod clock;
mod hash;
mod lease;
mod policy;
mod rng;
mod tables;

use std::net::{IpAddr, SocketAddr};

use edgemesh_model::{Backend, Frontend, Service, ServicePort};

#[cfg(doc)]
use edgemesh_model::LbPolicy;

pub use affinity::MAX_AFFINITY_ENTRIES;
pub use balancer::LoadBalancer;
pub use clock::{Clock, ManualClock, SystemClock};
pub use hash::{ConfigError, ConsistentHashConfig};
pub use lease::Lease;
pub use rng::{RandomSource, SeededRng, ThreadRng};

/// What the proxy knows about a connection when it asks for a backend.
#[derive(Debug, Clone, Copy)]
pub struct PickContext<'a> {
    /// The client's address (for ClientIP affinity and source-IP hashing).
    pub client: IpAddr,
    /// Value of the DestinationRule's `httpHeaderName` header, when the proxy parsed one.
    pub http_header: Option<&'a str>,
    /// Backends that already failed for this connection: never pick them again.
    pub exclude: &'a [SocketAddr],
}

impl<'a> PickContext<'a> {
    /// A context with only the client address (no header, nothing excluded).
    pub fn client(client: IpAddr) -> Self {
        Self {
            client,
            http_header: None,
            exclude: &[],
        }
    }
}

/// The service port a pick is for: the frontend the connection reached (the balancer keeps its
/// state by it), the service routed there and the port whose backends are chosen from.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub frontend: &'a Frontend,
    pub service: &'a Service,
    pub port: &'a ServicePort,
}

/// A chosen backend; holding the lease counts the connection against the backend's load
/// (consistent hash with bounded load). Drop it when the connection ends.
#[derive(Debug)]
pub struct Picked {
    pub backend: Backend,
    pub lease: Lease,
}

/// Chooses a backend for a new connection (or request) to a service port.
pub trait Balancer: Send + Sync + 'static {
    /// `None` when the port has no backend left that is not excluded.
    fn pick(&self, to: Destination<'_>, ctx: &PickContext<'_>) -> Option<Picked>;
}
