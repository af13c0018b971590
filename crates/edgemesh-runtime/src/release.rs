//! Handing back to the OS what a burst of work freed.
//!
//! mimalloc returns a thread's free pages to the OS only from a later allocator call of that
//! same thread, a second after they were freed. A runtime worker that goes idle right after a
//! burst (the first list of 10,000 services, a full rule rewrite) makes no such call, and the
//! burst's garbage stayed resident for good: 10,000 services from one manifests file settled at
//! 40 or at 46 MiB depending on how the burst ended. So each worker, when it goes idle, hands
//! back its free pages, at most once per [`RELEASE_INTERVAL`] (docs/benchmarks.md, "Idle
//! workers hand back what a burst freed": 39–40 MiB in every run).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How often an idle worker hands back free memory at most. A release walks the worker's pages
/// (0.4–1.7 ms at 100,000 services, measured); a worker parks up to once per request, so
/// without a bound a busy proxy would pay that per request.
pub const RELEASE_INTERVAL: Duration = Duration::from_secs(2);

thread_local! {
    /// When this thread last handed back memory.
    static LAST_RELEASE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The runtime's `on_thread_park` hook: the parking worker hands back its free pages when its
/// last release is [`RELEASE_INTERVAL`] old.
pub fn release_free_memory_when_due() {
    let now = Instant::now();
    let due = LAST_RELEASE.with(|last| {
        let due = release_due(last.get(), now);
        if due {
            last.set(Some(now));
        }
        due
    });
    if due {
        release_free_memory();
    }
}

/// Whether a thread that last released at `last` releases again at `now`.
fn release_due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|last| now.saturating_duration_since(last) >= RELEASE_INTERVAL)
}

/// Hands the calling thread's free pages back to mimalloc's arena and purges every free range
/// of the arena to the OS at once (`mi_collect(true)`).
#[allow(unsafe_code)]
fn release_free_memory() {
    unsafe extern "C" {
        /// mimalloc's own C entry point (`void mi_collect(bool force)`), linked in by
        /// libmimalloc-sys, which binds it only behind a feature that pulls in another crate.
        fn mi_collect(force: bool);
    }
    // SAFETY: mi_collect takes no pointers, may be called from any thread at any time and only
    // affects the allocator's own bookkeeping; this crate links mimalloc, so the symbol is there
    // (with another global allocator it only tidies mimalloc's own, unused heaps).
    unsafe { mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_releases_at_its_first_park_then_once_per_interval() {
        let start = Instant::now();
        assert!(release_due(None, start));
        assert!(!release_due(Some(start), start));
        assert!(!release_due(
            Some(start),
            start + RELEASE_INTERVAL - Duration::from_millis(1)
        ));
        assert!(release_due(Some(start), start + RELEASE_INTERVAL));
    }

    #[test]
    fn a_release_is_safe_from_any_thread_at_any_time() {
        let garbage: Vec<Vec<u8>> = (0..1000).map(|i| vec![0u8; 64 + i]).collect();
        drop(garbage);
        release_free_memory();
        std::thread::spawn(release_free_memory)
            .join()
            .expect("a release on another thread");
        release_free_memory_when_due();
        release_free_memory_when_due();
    }
}
