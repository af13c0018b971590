//! Load balancing: which backend of a service port serves a new connection or request.
//!
//! The [`Balancer`] trait is the seam the proxy calls; implementations are pure apart from the
//! random number generator and the clock, which are injected.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgemesh_model::{Backend, Frontend, Service, ServicePort};

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

/// A chosen backend; holding the lease counts the connection against the backend's load
/// (consistent hash with bounded load). Drop it when the connection ends.
#[derive(Debug)]
pub struct Picked {
    pub backend: Backend,
    pub lease: Lease,
}

/// Load accounting for one connection; decrements its counter on drop.
#[derive(Debug, Default)]
pub struct Lease(Option<Arc<AtomicUsize>>);

impl Lease {
    /// A lease that counts against `load` until dropped.
    pub fn counting(load: Arc<AtomicUsize>) -> Self {
        load.fetch_add(1, Ordering::Relaxed);
        Self(Some(load))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(load) = self.0.take() {
            load.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Chooses a backend for a new connection (or request) to a service port.
pub trait Balancer: Send + Sync + 'static {
    /// `None` when the port has no backend left that is not excluded.
    fn pick(
        &self,
        frontend: &Frontend,
        service: &Service,
        port: &ServicePort,
        ctx: &PickContext<'_>,
    ) -> Option<Picked>;
}
