//! Per-frontend state that outlives Snapshot rebuilds: load counters, the round-robin cursor,
//! the hash ring and the affinity table. Rebuilt lazily when a port's backend set changes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::{ArcSwap, Guard};
use edgemesh_model::Backend;
use foldhash::fast::RandomState as FastHash;

use crate::affinity::AffinityTable;
use crate::hash::{ConsistentHashConfig, HashRing};
use crate::lease::Lease;
use crate::rng::RandomSource;

/// Everything derived from one backend set.
#[derive(Debug)]
pub(crate) struct PortCore {
    pub(crate) backends: Arc<[Backend]>,
    /// Live connections per backend; shared with the previous core for surviving addresses so
    /// that leases taken before a rebuild keep counting.
    loads: Box<[Arc<AtomicUsize>]>,
    index: HashMap<SocketAddr, usize, FastHash>,
    rr_next: AtomicUsize,
    ring: OnceLock<HashRing>,
}

impl PortCore {
    /// Tables for `backends`, reusing `previous`'s load counters for addresses that remain.
    /// Round robin starts at a random position, as EdgeMesh (which shuffles its endpoint list)
    /// and kube-proxy do, so that agents do not all hit the first backend together.
    pub(crate) fn build(
        backends: &Arc<[Backend]>,
        previous: Option<&PortCore>,
        rng: &impl RandomSource,
    ) -> Self {
        let mut index = HashMap::with_capacity_and_hasher(backends.len(), FastHash::default());
        let loads = backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                index.entry(b.addr).or_insert(i);
                previous
                    .and_then(|p| p.load_counter(b.addr))
                    .unwrap_or_default()
            })
            .collect();
        Self {
            backends: Arc::clone(backends),
            loads,
            index,
            rr_next: AtomicUsize::new(rng.below(backends.len())),
            ring: OnceLock::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.backends.len()
    }

    pub(crate) fn addr(&self, i: usize) -> SocketAddr {
        self.backends[i].addr
    }

    /// Index of the backend at `addr`, if it is still in the set.
    pub(crate) fn position(&self, addr: SocketAddr) -> Option<usize> {
        self.index.get(&addr).copied()
    }

    fn load_counter(&self, addr: SocketAddr) -> Option<Arc<AtomicUsize>> {
        self.position(addr).map(|i| Arc::clone(&self.loads[i]))
    }

    pub(crate) fn load(&self, i: usize) -> usize {
        self.loads[i].load(Ordering::Relaxed)
    }

    /// The next round-robin position (wraps; exact spread over any `n × len` picks).
    pub(crate) fn next_rr(&self) -> usize {
        self.rr_next.fetch_add(1, Ordering::Relaxed) % self.len().max(1)
    }

    pub(crate) fn ring(&self, config: &ConsistentHashConfig) -> &HashRing {
        self.ring
            .get_or_init(|| HashRing::build(&self.backends, config))
    }

    pub(crate) fn lease(&self, i: usize, total: &Arc<AtomicUsize>) -> Lease {
        Lease::counting_both(&self.loads[i], total)
    }
}

/// The core plus the exact `Arc` it was last checked against (pointer equality is the fast path;
/// a new Snapshot with the same backends only swaps this small wrapper).
#[derive(Debug)]
pub(crate) struct PortTables {
    seen: Arc<[Backend]>,
    pub(crate) core: Arc<PortCore>,
}

/// State of one frontend.
#[derive(Debug)]
pub(crate) struct FrontendState {
    tables: ArcSwap<PortTables>,
    rebuild: Mutex<()>,
    /// Live connections of this frontend (including ones to backends since removed, until
    /// they close; that only loosens the bounded-load cap briefly).
    pub(crate) total: Arc<AtomicUsize>,
    pub(crate) affinity: Mutex<AffinityTable>,
}

impl FrontendState {
    pub(crate) fn new(backends: &Arc<[Backend]>, rng: &impl RandomSource) -> Self {
        let core = Arc::new(PortCore::build(backends, None, rng));
        Self {
            tables: ArcSwap::from_pointee(PortTables {
                seen: Arc::clone(backends),
                core,
            }),
            rebuild: Mutex::new(()),
            total: Arc::default(),
            affinity: Mutex::default(),
        }
    }

    /// The tables for `backends`, rebuilding them first if the set changed.
    pub(crate) fn tables(
        &self,
        backends: &Arc<[Backend]>,
        rng: &impl RandomSource,
    ) -> Guard<Arc<PortTables>> {
        let current = self.tables.load();
        if Arc::ptr_eq(&current.seen, backends) {
            return current;
        }
        drop(current);
        self.refresh(backends, rng)
    }

    #[cold]
    fn refresh(
        &self,
        backends: &Arc<[Backend]>,
        rng: &impl RandomSource,
    ) -> Guard<Arc<PortTables>> {
        let _one_rebuilder = self.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.tables.load_full();
        if !Arc::ptr_eq(&current.seen, backends) {
            let core = if *current.core.backends == **backends {
                Arc::clone(&current.core)
            } else {
                Arc::new(PortCore::build(backends, Some(&current.core), rng))
            };
            let seen = Arc::clone(backends);
            self.tables.store(Arc::new(PortTables { seen, core }));
        }
        self.tables.load()
    }

    /// The current core, whatever set it was built for (for reporting).
    pub(crate) fn core(&self) -> Arc<PortCore> {
        Arc::clone(&self.tables.load().core)
    }
}
