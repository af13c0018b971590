//! [`LoadBalancer`]: the production [`Balancer`], with per-frontend state in a sharded map.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use edgemesh_model::{ClientIpAffinity, Frontend, LbPolicy, Service, ServicePort, Snapshot};
use foldhash::fast::{FixedState, RandomState as FastHash};

use crate::affinity::SWEEP_PER_PICK;
use crate::clock::{Clock, SystemClock};
use crate::hash::{ConfigError, ConsistentHashConfig};
use crate::rng::{RandomSource, ThreadRng};
use crate::tables::{FrontendState, PortCore};
use crate::{Balancer, Destination, PickContext, Picked, policy};

/// Shards of the frontend map: picks on different frontends rarely share a lock word.
const SHARDS: usize = 32;

type Shard = RwLock<HashMap<Frontend, Arc<FrontendState>, FastHash>>;

/// Round robin, random, consistent hash with bounded load and ClientIP affinity, with state per
/// frontend that survives Snapshot rebuilds. `R` and `C` are the injected randomness and clock.
pub struct LoadBalancer<R = ThreadRng, C = SystemClock> {
    config: ConsistentHashConfig,
    rng: R,
    clock: C,
    shards: Box<[Shard]>,
    shard_of: FixedState,
}

impl LoadBalancer {
    /// The production balancer: thread-local randomness and the system clock.
    pub fn new(config: ConsistentHashConfig) -> Result<Self, ConfigError> {
        Self::with_sources(config, ThreadRng, SystemClock)
    }
}

impl Default for LoadBalancer {
    fn default() -> Self {
        Self::with_valid(ConsistentHashConfig::default(), ThreadRng, SystemClock)
    }
}

impl<R: RandomSource, C: Clock> LoadBalancer<R, C> {
    /// A balancer with injected randomness and clock (tests, benchmarks, simulations).
    pub fn with_sources(
        config: ConsistentHashConfig,
        rng: R,
        clock: C,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::with_valid(config, rng, clock))
    }

    fn with_valid(config: ConsistentHashConfig, rng: R, clock: C) -> Self {
        Self {
            config,
            rng,
            clock,
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            shard_of: FixedState::default(),
        }
    }

    pub fn config(&self) -> &ConsistentHashConfig {
        &self.config
    }

    fn shard(&self, frontend: &Frontend) -> &Shard {
        &self.shards[self.shard_of.hash_one(frontend) as usize % SHARDS]
    }

    /// Runs `f` on the frontend's state, creating it on the first pick. The shard's read lock
    /// is held during `f` (a pick is short) instead of cloning the state's `Arc`: one shared
    /// cache-line round trip less per pick.
    fn with_state<T>(
        &self,
        frontend: &Frontend,
        port: &ServicePort,
        f: impl FnOnce(&FrontendState) -> T,
    ) -> T {
        let shard = self.shard(frontend);
        if let Some(state) = read(shard).get(frontend) {
            return f(state);
        }
        let state = {
            let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
            let state = map
                .entry(*frontend)
                .or_insert_with(|| Arc::new(FrontendState::new(&port.backends, &self.rng)));
            Arc::clone(state)
        };
        f(&state)
    }

    fn pick_index(
        &self,
        state: &FrontendState,
        core: &PortCore,
        service: &Service,
        ctx: &PickContext<'_>,
    ) -> Option<usize> {
        if let Some(affinity) = &service.session_affinity() {
            return self.pick_sticky(state, core, affinity, ctx);
        }
        match &service.lb_policy {
            LbPolicy::RoundRobin => policy::round_robin(core, ctx.exclude),
            LbPolicy::Random => policy::random(core, ctx.exclude, &self.rng),
            LbPolicy::ConsistentHash(key) => {
                let key_hash = policy::key_hash(key, ctx);
                policy::consistent_hash(core, &self.config, key_hash, ctx.exclude)
            }
        }
    }

    /// ClientIP affinity: the client's backend while its entry is alive, the backend is still
    /// in the set and not excluded; otherwise a round-robin pick that becomes the new entry.
    fn pick_sticky(
        &self,
        state: &FrontendState,
        core: &PortCore,
        affinity: &ClientIpAffinity,
        ctx: &PickContext<'_>,
    ) -> Option<usize> {
        let now = self.clock.now();
        let mut table = state.affinity.lock().unwrap_or_else(|p| p.into_inner());
        table.sweep(now, SWEEP_PER_PICK);
        if let Some(sticky) = table.live_mut(ctx.client, now, affinity.timeout) {
            let remembered = Some(sticky.backend())
                .filter(|addr| !ctx.exclude.contains(addr))
                .and_then(|addr| core.position(addr));
            let index = match remembered {
                Some(i) => i,
                None => policy::round_robin(core, ctx.exclude)?,
            };
            sticky.use_at(core.addr(index), now);
            return Some(index);
        }
        let index = policy::round_robin(core, ctx.exclude)?;
        table.stick(ctx.client, core.addr(index), now);
        Some(index)
    }

    /// Drops the state of every frontend for which `keep` is false, and fully sweeps expired
    /// affinity entries of the others. Call after each new Snapshot (see [`Self::prune`]).
    pub fn retain(&self, mut keep: impl FnMut(&Frontend) -> bool) {
        let mut kept = Vec::new();
        for shard in self.shards.iter() {
            let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
            map.retain(|frontend, _| keep(frontend));
            kept.extend(map.values().cloned());
        }
        let now = self.clock.now();
        for state in kept {
            let mut table = state.affinity.lock().unwrap_or_else(|p| p.into_inner());
            table.sweep(now, usize::MAX);
        }
    }

    /// Keeps only the frontends `snapshot` still routes.
    pub fn prune(&self, snapshot: &Snapshot) {
        self.retain(|frontend| snapshot.route(frontend).is_some());
    }

    /// Number of frontends with state.
    pub fn frontend_count(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }

    /// Live connections (leases held) per backend of `frontend`, for metrics and debugging.
    pub fn backend_loads(&self, frontend: &Frontend) -> Option<Vec<(SocketAddr, usize)>> {
        let state = read(self.shard(frontend)).get(frontend).cloned()?;
        let core = state.core();
        Some(
            (0..core.len())
                .map(|i| (core.addr(i), core.load(i)))
                .collect(),
        )
    }

    /// Clients currently remembered by ClientIP affinity on `frontend`.
    pub fn affinity_entries(&self, frontend: &Frontend) -> usize {
        let Some(state) = read(self.shard(frontend)).get(frontend).cloned() else {
            return 0;
        };
        let table = state.affinity.lock().unwrap_or_else(|p| p.into_inner());
        table.len()
    }
}

fn read(
    shard: &Shard,
) -> std::sync::RwLockReadGuard<'_, HashMap<Frontend, Arc<FrontendState>, FastHash>> {
    shard.read().unwrap_or_else(|p| p.into_inner())
}

impl<R: RandomSource, C: Clock> Balancer for LoadBalancer<R, C> {
    fn pick(&self, to: Destination<'_>, ctx: &PickContext<'_>) -> Option<Picked> {
        let Destination {
            frontend,
            service,
            port,
        } = to;
        if port.backends.is_empty() {
            return None;
        }
        self.with_state(frontend, port, |state| {
            let tables = state.tables(&port.backends, &self.rng);
            let core = &tables.core;
            let index = self.pick_index(state, core, service, ctx)?;
            Some(Picked {
                backend: core.backends[index].clone(),
                lease: core.lease(index, &state.total),
            })
        })
    }
}

impl<R, C> fmt::Debug for LoadBalancer<R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frontends: usize = self.shards.iter().map(|s| read(s).len()).sum();
        f.debug_struct("LoadBalancer")
            .field("config", &self.config)
            .field("frontends", &frontends)
            .finish_non_exhaustive()
    }
}
