//! Helpers for tests of the proxy and of crates built on it (not used by the agent).

use std::net::SocketAddr;
use std::sync::Mutex;

use edgemesh_lb::{Balancer, Destination, Lease, PickContext, Picked};
use edgemesh_model::Backend;

/// Picks the first of its own backends that is not excluded, and remembers the header value
/// of every pick. Ignores the Snapshot's backends so tests can point at loopback servers.
#[derive(Debug, Default)]
pub struct FirstAvailable {
    backends: Vec<SocketAddr>,
    seen_headers: Mutex<Vec<Option<String>>>,
}

impl FirstAvailable {
    pub fn new(backends: Vec<SocketAddr>) -> Self {
        Self {
            backends,
            seen_headers: Mutex::default(),
        }
    }

    /// The `http_header` of each pick so far, in order.
    pub fn seen_headers(&self) -> Vec<Option<String>> {
        self.seen_headers
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}

impl Balancer for FirstAvailable {
    fn pick(&self, _to: Destination<'_>, ctx: &PickContext<'_>) -> Option<Picked> {
        if let Ok(mut seen) = self.seen_headers.lock() {
            seen.push(ctx.http_header.map(str::to_owned));
        }
        let addr = *self.backends.iter().find(|a| !ctx.exclude.contains(a))?;
        Some(Picked {
            backend: Backend {
                addr,
                node_name: None,
            },
            lease: Lease::default(),
        })
    }
}
