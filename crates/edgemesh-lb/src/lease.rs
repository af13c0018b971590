//! Live-connection accounting: a [`Lease`] counts one connection against its backend (and, for
//! balancer-issued leases, against the frontend's total) until it is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Load accounting for one connection; decrements its counters on drop.
///
/// Leases issued by [`LoadBalancer`](crate::LoadBalancer) feed the bounded-load check of the
/// consistent-hash policy, so the proxy must keep the lease for as long as the connection lives.
#[derive(Debug, Default)]
pub struct Lease {
    backend: Option<Arc<AtomicUsize>>,
    total: Option<Arc<AtomicUsize>>,
}

impl Lease {
    /// A lease that counts against `load` until dropped.
    pub fn counting(load: Arc<AtomicUsize>) -> Self {
        load.fetch_add(1, Ordering::Relaxed);
        Self {
            backend: Some(load),
            total: None,
        }
    }

    /// A lease that counts against a backend's `load` and a frontend's `total`.
    pub(crate) fn counting_both(load: &Arc<AtomicUsize>, total: &Arc<AtomicUsize>) -> Self {
        total.fetch_add(1, Ordering::Relaxed);
        let mut lease = Self::counting(Arc::clone(load));
        lease.total = Some(Arc::clone(total));
        lease
    }

    /// A lease that counts nothing (for callers that do their own accounting).
    pub fn none() -> Self {
        Self::default()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        for counter in [self.backend.take(), self.total.take()]
            .into_iter()
            .flatten()
        {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_while_held_and_releases_on_drop() {
        let load = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let a = Lease::counting_both(&load, &total);
        let b = Lease::counting(Arc::clone(&load));
        assert_eq!(load.load(Ordering::Relaxed), 2);
        assert_eq!(total.load(Ordering::Relaxed), 1);
        drop(a);
        assert_eq!(load.load(Ordering::Relaxed), 1);
        assert_eq!(total.load(Ordering::Relaxed), 0);
        drop(b);
        assert_eq!(load.load(Ordering::Relaxed), 0);
        drop(Lease::none());
    }
}
