//! `sessionAffinity: ClientIP`: which backend each client IP is stuck to, and when it last used
//! it. Expiry counts from the last use, as kube-proxy does. Memory stays bounded: every entry
//! has exactly one element in an expiry queue that picks sweep a few elements at a time, and a
//! hard cap evicts the oldest entry when a flood of new clients arrives.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState as FastHash;

/// Expiry-queue elements examined per pick: bounded work on the connection path.
pub(crate) const SWEEP_PER_PICK: usize = 4;

/// Most clients remembered per frontend; beyond it the oldest entry is evicted.
pub const MAX_AFFINITY_ENTRIES: usize = 1 << 16;

/// One client's remembered backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sticky {
    backend: SocketAddr,
    last_used: Instant,
}

impl Sticky {
    pub(crate) fn backend(&self) -> SocketAddr {
        self.backend
    }

    /// Records a use of `backend` (the same or a replacement) at `now`.
    pub(crate) fn use_at(&mut self, backend: SocketAddr, now: Instant) {
        *self = Sticky {
            backend,
            last_used: now,
        };
    }
}

#[derive(Debug, Default)]
pub(crate) struct AffinityTable {
    entries: HashMap<IpAddr, Sticky, FastHash>,
    /// One element per entry: (client, the last use known when it was queued).
    expiry: VecDeque<(IpAddr, Instant)>,
    /// The service's timeout at the last pick (used by full sweeps outside picks).
    timeout: Duration,
}

fn alive(last_used: Instant, now: Instant, timeout: Duration) -> bool {
    now.saturating_duration_since(last_used) < timeout
}

impl AffinityTable {
    /// The backend `client` is stuck to, if its entry has not expired.
    #[cfg(test)]
    fn lookup(&mut self, client: IpAddr, now: Instant, timeout: Duration) -> Option<SocketAddr> {
        self.live_mut(client, now, timeout).map(|s| s.backend())
    }

    /// `client`'s entry if it has not expired, to refresh or replace in place (one hash lookup
    /// on the hot path, where a lookup-then-insert would take two).
    pub(crate) fn live_mut(
        &mut self,
        client: IpAddr,
        now: Instant,
        timeout: Duration,
    ) -> Option<&mut Sticky> {
        self.timeout = timeout;
        self.entries
            .get_mut(&client)
            .filter(|sticky| alive(sticky.last_used, now, timeout))
    }

    /// Sticks `client` to `backend` from `now` on (refreshing an existing entry in place).
    pub(crate) fn stick(&mut self, client: IpAddr, backend: SocketAddr, now: Instant) {
        let sticky = Sticky {
            backend,
            last_used: now,
        };
        if self.entries.insert(client, sticky).is_none() {
            self.expiry.push_back((client, now));
            if self.entries.len() > MAX_AFFINITY_ENTRIES {
                self.evict_oldest();
            }
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((client, _)) = self.expiry.pop_front() {
            self.entries.remove(&client);
        }
    }

    /// Examines at most `budget` due queue elements: drops expired entries, requeues refreshed
    /// ones. Stops at the first element that is not due yet.
    pub(crate) fn sweep(&mut self, now: Instant, budget: usize) {
        let timeout = self.timeout;
        for _ in 0..budget {
            match self.expiry.front() {
                Some(&(_, queued)) if !alive(queued, now, timeout) => {}
                _ => return,
            }
            let Some((client, _)) = self.expiry.pop_front() else {
                return;
            };
            match self.entries.get(&client) {
                Some(s) if alive(s.last_used, now, timeout) => {
                    self.expiry.push_back((client, s.last_used));
                }
                _ => {
                    self.entries.remove(&client);
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xC000_0200 + n))
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(ip(200), port)
    }

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn entry_lives_until_timeout_after_last_use() {
        let start = Instant::now();
        let mut table = AffinityTable::default();
        table.stick(ip(1), addr(1), start);
        let cases = [(9, Some(addr(1))), (10, None), (11, None)];
        for (secs, want) in cases {
            let now = start + Duration::from_secs(secs);
            assert_eq!(table.lookup(ip(1), now, T), want, "after {secs}s");
        }
        table.stick(ip(1), addr(1), start + Duration::from_secs(9));
        assert_eq!(
            table.lookup(ip(1), start + Duration::from_secs(18), T),
            Some(addr(1))
        );
    }

    #[test]
    fn sweep_removes_expired_and_keeps_refreshed() {
        let start = Instant::now();
        let mut table = AffinityTable::default();
        table.lookup(ip(0), start, T);
        for n in 0..10 {
            table.stick(ip(n), addr(1), start);
        }
        table.stick(ip(3), addr(1), start + Duration::from_secs(8));
        table.sweep(start + Duration::from_secs(10), usize::MAX);
        assert_eq!(table.len(), 1, "only the refreshed client remains");
        assert_eq!(table.expiry.len(), 1);
        table.sweep(start + Duration::from_secs(18), usize::MAX);
        assert_eq!(table.len(), 0);
        assert!(table.expiry.is_empty());
    }

    #[test]
    fn sweep_work_is_bounded() {
        let start = Instant::now();
        let mut table = AffinityTable::default();
        table.lookup(ip(0), start, T);
        for n in 0..10 {
            table.stick(ip(n), addr(1), start);
        }
        table.sweep(start + T, SWEEP_PER_PICK);
        assert_eq!(table.len(), 10 - SWEEP_PER_PICK);
    }

    #[test]
    fn flood_of_clients_is_capped() {
        let start = Instant::now();
        let mut table = AffinityTable::default();
        for n in 0..(MAX_AFFINITY_ENTRIES as u32 + 10) {
            table.stick(ip(n), addr(1), start);
        }
        assert_eq!(table.len(), MAX_AFFINITY_ENTRIES);
        assert_eq!(table.expiry.len(), MAX_AFFINITY_ENTRIES);
        assert_eq!(
            table.lookup(ip(0), start, T),
            None,
            "the oldest was evicted"
        );
    }
}
