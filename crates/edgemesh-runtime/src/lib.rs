//! The runtime every edgemesh process runs on (the agent's roles, and the tunnel's test node so
//! that memory measured on it holds for the agent): two workers, an edge node's share of the
//! CPU, each handing back free memory when it goes idle ([`release`]).
//!
//! The process's allocator is mimalloc; each binary names it (`#[global_allocator] static
//! ALLOCATOR: edgemesh_runtime::MiMalloc = edgemesh_runtime::MiMalloc;`), so that a test binary
//! linking this crate keeps whatever allocator it counts with. With glibc malloc, the memory of
//! a load peak (thousands of tunnelled connections, their copy buffers and yamux state) stayed
//! resident after every connection had closed, an agent growing by megabytes per round of load
//! in its per-thread arenas; mimalloc returns it (docs/tunnel.md, "Memory after load";
//! `netns_memory_returns_after_load`).

pub mod release;

pub use mimalloc::MiMalloc;

/// Worker threads: an edge node's share of the CPU.
const WORKERS: usize = 2;

/// A multi-thread runtime of two workers, each handing back the free pages of its last burst of
/// work when it parks, at most once per [`release::RELEASE_INTERVAL`].
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .on_thread_park(release::release_free_memory_when_due)
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[global_allocator]
    static ALLOCATOR: MiMalloc = MiMalloc;

    /// The process's anonymous resident memory (heap), in MiB.
    fn rss_anon_mib() -> u64 {
        edgemesh_telemetry::self_status_bytes("RssAnon").expect("RssAnon in /proc/self/status")
            >> 20
    }

    /// 256 MiB in blocks of the sizes a burst of objects has, touched, then all freed.
    fn burst() {
        let blocks: Vec<Vec<u8>> = (0..(256 << 20) / 2048)
            .map(|i| vec![1u8; 1024 + (i % 2048)])
            .collect();
        assert!(blocks.iter().all(|b| b[0] == 1));
    }

    #[test]
    fn a_worker_gone_idle_hands_back_what_its_burst_freed() {
        const BURST_MIB: u64 = 256;
        let runtime = runtime().expect("runtime");
        // Past the workers' first release at start-up, so the park after the burst is due.
        std::thread::sleep(release::RELEASE_INTERVAL + Duration::from_millis(200));
        let before = rss_anon_mib();
        runtime.block_on(async { tokio::spawn(async { burst() }).await.expect("burst task") });
        // Without the release the freed pages stay resident for good: the worker that freed
        // them allocates nothing more, and mimalloc purges only from a later allocation.
        let started = Instant::now();
        let mut now = rss_anon_mib();
        while now > before + BURST_MIB / 4 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            now = rss_anon_mib();
        }
        assert!(
            now <= before + BURST_MIB / 4,
            "RssAnon {now} MiB, {before} MiB before a {BURST_MIB} MiB burst that was freed"
        );
    }
}
