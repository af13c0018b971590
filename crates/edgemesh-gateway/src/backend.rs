//! From a route's target (a Service port) to an open connection to one of its endpoints, with
//! the agent's balancer and dialer (direct on this node or in an offline site, through the
//! tunnel to an endpoint on another node).

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use edgemesh_lb::Balancer;
use edgemesh_model::{Frontend, ObjectKey, Protocol, Service, ServicePort, SnapshotCell};
use edgemesh_proxy::connect::{self, Client, Connected, DialLimits};
use edgemesh_proxy::{Dialer, Metrics, ProxyError};

use crate::subset::Subset;

/// A Service port a route sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: ObjectKey,
    /// `None`: the Service's only port.
    pub port: Option<u16>,
    pub weight: u32,
    /// `destination.subset`: only these endpoints (`None`: every endpoint).
    pub subset: Option<Subset>,
}

impl Target {
    /// Whether an endpoint at `ip` may serve this target: any endpoint without a subset, only
    /// the subset's pods with one, none when the subset is undefined.
    pub fn admits(&self, ip: IpAddr) -> bool {
        match &self.subset {
            None => true,
            Some(Ok(pods)) => pods.ips.contains(&ip),
            Some(Err(_)) => false,
        }
    }

    /// The subset's name, when the target has a resolved one.
    pub fn subset_name(&self) -> Option<&str> {
        match &self.subset {
            Some(Ok(pods)) => Some(&pods.name),
            _ => None,
        }
    }
}

/// Why a target could not be reached: each names the Service.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("Service {0} not found")]
    NoService(String),
    #[error("Service {service} has no port {port}")]
    NoPort { service: String, port: String },
    #[error("Service {service}: {error}")]
    Unreachable { service: String, error: ProxyError },
    /// A `destination.subset` no DestinationRule defines; the message names it.
    #[error("{0}")]
    UndefinedSubset(Arc<str>),
}

/// The balancer, dialer and Snapshot the gateway's routes resolve against.
pub struct Backends {
    cell: Arc<SnapshotCell>,
    balancer: Arc<dyn Balancer>,
    dialer: Arc<dyn Dialer>,
    limits: DialLimits,
    /// The proxy's dial counters (retries, failures), kept for the gateway's `/metrics`.
    pub dial_metrics: Metrics,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Backends {
    pub fn new(
        cell: Arc<SnapshotCell>,
        balancer: Arc<dyn Balancer>,
        dialer: Arc<dyn Dialer>,
        limits: DialLimits,
    ) -> Self {
        Backends {
            cell,
            balancer,
            dialer,
            limits,
            dial_metrics: Metrics::default(),
        }
    }

    /// Whether `target`'s port declares HTTP/2 as Istio reads it: `appProtocol` grpc, http2,
    /// h2c (or `kubernetes.io/h2c`), or a port name starting with `grpc`, `http2` or `h2c`.
    pub fn speaks_h2(&self, target: &Target) -> bool {
        let snapshot = self.cell.load();
        let Some(port) = snapshot
            .service(&target.service)
            .and_then(|service| port_of(service, target.port))
        else {
            return false;
        };
        let declared = port.app_protocol.as_deref().unwrap_or(&port.name);
        let declared = declared.strip_prefix("kubernetes.io/").unwrap_or(declared);
        let declared = declared.to_ascii_lowercase();
        ["grpc", "http2", "h2c"]
            .iter()
            .any(|p| declared == *p || declared.starts_with(&format!("{p}-")))
    }

    /// Picks an endpoint of `target` and connects (other endpoints are tried when one fails).
    pub async fn connect(
        &self,
        target: &Target,
        client: IpAddr,
        http_header: Option<&str>,
    ) -> Result<Connected, BackendError> {
        self.connect_avoiding(target, client, http_header, &[])
            .await
    }

    /// [`connect`](Self::connect), to an endpoint not in `avoid` (those a request already
    /// tried) while the balancer has another; to any endpoint when it has none.
    pub async fn connect_avoiding(
        &self,
        target: &Target,
        client: IpAddr,
        http_header: Option<&str>,
        avoid: &[SocketAddr],
    ) -> Result<Connected, BackendError> {
        let snapshot = self.cell.load();
        let service = snapshot
            .service(&target.service)
            .ok_or_else(|| BackendError::NoService(target.service.to_string()))?;
        let port = port_of(service, target.port).ok_or_else(|| BackendError::NoPort {
            service: target.service.to_string(),
            port: target
                .port
                .map_or("(none given, and it has several)".into(), |p| p.to_string()),
        })?;
        let frontend = frontend_of(service, port);
        let outside = outside_subset(target, port)?;
        let avoid: Vec<SocketAddr> = avoid.iter().chain(&outside).copied().collect();
        let client = Client {
            ip: client,
            http_header,
        };
        let dial = |avoid| {
            let target_ref = connect::Target {
                frontend: &frontend,
                service,
                port,
                // Left out like another node's endpoints, without counting as failed dials.
                foreign: avoid,
            };
            connect::dial_any(
                target_ref,
                client,
                &*self.balancer,
                &*self.dialer,
                self.limits,
                &self.dial_metrics,
            )
        };
        let dialed = match dial(&avoid).await {
            Err(ProxyError::NoEndpoint(_)) if avoid.len() > outside.len() => dial(&outside).await,
            dialed => dialed,
        };
        dialed.map_err(|error| BackendError::Unreachable {
            service: target.service.to_string(),
            error,
        })
    }
}

/// The backends of `port` the target's subset leaves out (none without a subset); an undefined
/// subset is an error naming it.
fn outside_subset(target: &Target, port: &ServicePort) -> Result<Vec<SocketAddr>, BackendError> {
    match &target.subset {
        None => return Ok(Vec::new()),
        Some(Err(why)) => return Err(BackendError::UndefinedSubset(Arc::clone(why))),
        Some(Ok(_)) => {}
    }
    Ok(port
        .backends
        .iter()
        .map(|b| b.addr)
        .filter(|addr| !target.admits(addr.ip()))
        .collect())
}

/// The TCP port numbered `number`, or the only TCP port when no number is given.
fn port_of(service: &Service, number: Option<u16>) -> Option<&ServicePort> {
    let mut tcp = service.ports.iter().filter(|p| p.protocol == Protocol::Tcp);
    match number {
        Some(n) => tcp.find(|p| p.port == n),
        None => {
            let only = tcp.next()?;
            tcp.next().is_none().then_some(only)
        }
    }
}

/// The frontend the balancer keys its state by: the ClusterIP port, or for a Service without
/// ClusterIP (headless) an address of its own derived from its key, so that two such Services
/// never share balancing state.
fn frontend_of(service: &Service, port: &ServicePort) -> Frontend {
    let ip = service.cluster_ips().first().copied().unwrap_or_else(|| {
        let mut hasher = std::hash::DefaultHasher::new();
        service.key().hash(&mut hasher);
        let bits = hasher.finish();
        // fd00::/8 (unique local): never a real ClusterIP of this cluster's frontends here.
        IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) | u128::from(bits)))
    });
    Frontend {
        ip,
        port: port.port,
        protocol: Protocol::Tcp,
    }
}
