//! The UDP session table: sessions by flow, at most `capacity` of them; a new flow that finds
//! it full takes the place of the least recently active one (each session owns two sockets, and
//! a flood of new source ports must not lock out new clients until idle flows expire).
//!
//! Finding the least recently active session without work on every datagram: each entry is
//! filed in an ordered index under the activity stamp it had when last filed, which is never
//! later than its real one (activity only moves forward). To evict, take the entry filed
//! earliest; if it has been active since, file it again under its real stamp and look again;
//! otherwise nothing else can be older, so it goes. Each refiling follows at least one
//! activity, so the cost stays at O(log n) per datagram at worst.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A value that knows when it was last active.
pub(crate) trait Recency {
    type Stamp: Ord + Copy;
    fn last_active(&self) -> Self::Stamp;
}

/// Where an entry is filed: its stamp, then insertion order among equal stamps.
type Position<S> = (S, u64);

/// Flows bounded by a capacity, evicting the least recently active.
#[derive(Debug)]
pub(crate) struct SessionTable<K, V: Recency> {
    entries: HashMap<K, (V, Position<V::Stamp>)>,
    by_age: BTreeMap<Position<V::Stamp>, K>,
    sequence: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Recency> SessionTable<K, V> {
    /// A table for at most `capacity` sessions (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            sequence: 0,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    /// Adds `value` under `key`, first evicting the least recently active sessions while the
    /// table is full; returns them (the caller ends them). A value already under `key` is
    /// replaced and returned too.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Vec<(K, V)> {
        let mut out = Vec::new();
        if let Some(old) = self.remove_if(&key, |_| true) {
            out.push((key.clone(), old));
        }
        while self.is_full() {
            match self.evict_least_recent() {
                Some(evicted) => out.push(evicted),
                None => break,
            }
        }
        let position = self.next_position(value.last_active());
        self.by_age.insert(position, key.clone());
        self.entries.insert(key, (value, position));
        out
    }

    /// Removes the session under `key` if `pred` holds for it (a flow's task removes only its
    /// own session, never a newer one that took the key after an eviction).
    pub(crate) fn remove_if(&mut self, key: &K, pred: impl FnOnce(&V) -> bool) -> Option<V> {
        let (value, _) = self.entries.get(key)?;
        if !pred(value) {
            return None;
        }
        let (value, position) = self.entries.remove(key)?;
        self.by_age.remove(&position);
        Some(value)
    }

    /// Removes and returns the least recently active session; `None` when empty.
    pub(crate) fn evict_least_recent(&mut self) -> Option<(K, V)> {
        // Each pass either evicts or refiles an entry under its real, later stamp; activity
        // racing with us could refile forever, so after a bounded number of passes the
        // earliest filed goes regardless.
        let mut passes = 2 * self.entries.len() + 1;
        loop {
            let (&position, _) = self.by_age.first_key_value()?;
            let key = self.by_age.remove(&position)?;
            let Some((value, filed)) = self.entries.get_mut(&key) else {
                continue; // Unreachable: the index only names live entries.
            };
            let real = value.last_active();
            passes = passes.saturating_sub(1);
            if real > position.0 && passes > 0 {
                self.sequence += 1;
                let refiled = (real, self.sequence);
                *filed = refiled;
                self.by_age.insert(refiled, key);
                continue;
            }
            let (value, _) = self.entries.remove(&key)?;
            return Some((key, value));
        }
    }

    fn next_position(&mut self, stamp: V::Stamp) -> Position<V::Stamp> {
        self.sequence += 1;
        (stamp, self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// A session whose last activity the test sets.
    #[derive(Clone, Debug)]
    struct Fake(Rc<Cell<u64>>);

    impl Fake {
        fn at(t: u64) -> Self {
            Self(Rc::new(Cell::new(t)))
        }
        fn touch(&self, t: u64) {
            self.0.set(t);
        }
    }

    impl Recency for Fake {
        type Stamp = u64;
        fn last_active(&self) -> u64 {
            self.0.get()
        }
    }

    fn keys(evicted: &[(u32, Fake)]) -> Vec<u32> {
        evicted.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn below_capacity_nothing_is_evicted() {
        let mut table = SessionTable::new(3);
        for k in 0..3u32 {
            assert!(table.insert(k, Fake::at(u64::from(k))).is_empty());
        }
        assert_eq!(table.len(), 3);
        assert!(table.is_full());
        assert!(table.get(&1).is_some());
    }

    #[test]
    fn a_new_flow_in_a_full_table_evicts_the_least_recently_active() {
        let mut table = SessionTable::new(3);
        let sessions: Vec<_> = (0..3).map(|k| Fake::at(k * 10)).collect();
        for (k, s) in (0u32..).zip(&sessions) {
            table.insert(k, s.clone());
        }
        // The oldest flow (0) was active after the others: flow 1 is now the idlest.
        sessions[0].touch(100);
        let evicted = table.insert(3, Fake::at(101));
        assert_eq!(keys(&evicted), [1]);
        assert_eq!(table.len(), 3);
        assert!(table.get(&1).is_none() && table.get(&0).is_some());
        // Next: 2 (at 20), then 0 (at 100), then 3 (at 101).
        assert_eq!(keys(&table.insert(4, Fake::at(102))), [2]);
        assert_eq!(keys(&table.insert(5, Fake::at(103))), [0]);
        assert_eq!(keys(&table.insert(6, Fake::at(104))), [3]);
    }

    #[test]
    fn equal_stamps_are_evicted_in_arrival_order() {
        let mut table = SessionTable::new(2);
        table.insert(1, Fake::at(5));
        table.insert(2, Fake::at(5));
        assert_eq!(keys(&table.insert(3, Fake::at(5))), [1]);
        assert_eq!(keys(&table.insert(4, Fake::at(5))), [2]);
    }

    #[test]
    fn a_flood_of_new_flows_keeps_the_table_at_capacity_and_spares_the_active_one() {
        let mut table = SessionTable::new(100);
        let busy = Fake::at(0);
        table.insert(u32::MAX, busy.clone());
        let mut evicted = 0;
        for k in 0..20_000u32 {
            let now = u64::from(k) + 1;
            busy.touch(now); // a flow that keeps talking while others come and go
            evicted += table.insert(k, Fake::at(now)).len();
            assert!(table.len() <= 100);
        }
        assert_eq!(evicted, 20_001 - 100);
        assert!(
            table.get(&u32::MAX).is_some(),
            "the active flow survived the flood"
        );
    }

    #[test]
    fn removal_is_only_of_the_session_asked_for() {
        let mut table = SessionTable::new(2);
        let old = Fake::at(1);
        table.insert(7, old.clone());
        let newer = Fake::at(2);
        let replaced = table.insert(7, newer.clone());
        assert_eq!(keys(&replaced), [7]);
        assert_eq!(table.len(), 1);
        // The evicted flow's task ends later and must not remove its successor.
        let is_old = |v: &Fake| Rc::ptr_eq(&v.0, &old.0);
        assert!(table.remove_if(&7, is_old).is_none());
        assert!(table.get(&7).is_some());
        let is_newer = |v: &Fake| Rc::ptr_eq(&v.0, &newer.0);
        assert!(table.remove_if(&7, is_newer).is_some());
        assert_eq!(table.len(), 0);
        assert!(table.evict_least_recent().is_none());
        // The index holds nothing stale: capacity is usable again in full.
        table.insert(1, Fake::at(3));
        assert!(table.insert(2, Fake::at(4)).is_empty());
    }

    #[test]
    fn a_capacity_of_zero_still_admits_one_flow() {
        let mut table = SessionTable::new(0);
        assert!(table.insert(1, Fake::at(1)).is_empty());
        assert_eq!(keys(&table.insert(2, Fake::at(2))), [1]);
    }
}
