//! Injected randomness. Load balancing needs speed and a uniform spread, not unpredictability:
//! the generators here are SplitMix64, which passes BigCrush and costs a few instructions.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A source of uniformly distributed numbers, shared by all threads that pick.
pub trait RandomSource: Send + Sync + 'static {
    /// A uniformly distributed 64-bit value.
    fn next_u64(&self) -> u64;

    /// A value in `0..n` (0 when `n` is 0). Lemire's multiply-shift: the bias is below
    /// `n / 2^64`, far under anything a load balancer could observe.
    fn below(&self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

impl<R: RandomSource> RandomSource for std::sync::Arc<R> {
    fn next_u64(&self) -> u64 {
        R::next_u64(self)
    }
}

/// SplitMix64's output function: a bijective mix of a 64-bit state.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Production generator: one SplitMix64 state per thread (no shared cache line), seeded from the
/// process's random hashing keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadRng;

thread_local! {
    static THREAD_STATE: Cell<u64> = Cell::new(thread_seed());
}

fn thread_seed() -> u64 {
    // RandomState draws its keys from the OS once per thread and varies them per instance.
    RandomState::new().hash_one(std::thread::current().id())
}

impl RandomSource for ThreadRng {
    fn next_u64(&self) -> u64 {
        THREAD_STATE.with(|state| {
            let next = state.get().wrapping_add(GAMMA);
            state.set(next);
            mix64(next)
        })
    }
}

/// A reproducible generator for tests and benchmarks: the same seed gives the same sequence
/// (from one thread). Lock-free, so it can be shared.
#[derive(Debug)]
pub struct SeededRng(AtomicU64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }
}

impl RandomSource for SeededRng {
    fn next_u64(&self) -> u64 {
        mix64(
            self.0
                .fetch_add(GAMMA, Ordering::Relaxed)
                .wrapping_add(GAMMA),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_rng_is_reproducible() {
        let (a, b) = (SeededRng::new(7), SeededRng::new(7));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
    }

    #[test]
    fn below_stays_in_range() {
        let rng = ThreadRng;
        assert_eq!(rng.below(0), 0);
        assert!((0..10_000).all(|_| rng.below(3) < 3));
        assert!((0..100).all(|_| rng.below(1) == 0));
    }
}
