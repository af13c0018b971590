//! Thread-per-core serving, as nginx's worker processes do: one single-threaded tokio runtime
//! per CPU, each with its own listening socket per address (`SO_REUSEPORT`: the kernel spreads
//! new connections across them). A connection, its HTTP/2 streams and its upstream connections
//! then live on one thread from accept to close.
//!
//! Measured before this (`scripts/bench-gateway.sh`, docs/benchmarks.md): on the shared
//! multi-threaded runtime a second worker thread added nothing, because every request crossed
//! threads twice (the downstream connection's task hands it to the upstream connection's task
//! and back) and each crossing is a futex wake-up.

use std::sync::OnceLock;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The serving threads, started on first use.
#[derive(Debug)]
pub struct Workers {
    count: usize,
    started: OnceLock<Result<Started, String>>,
}

#[derive(Debug)]
struct Started {
    handles: Vec<Handle>,
    /// Dropping these ends the threads (with the gateway's `Shared`).
    _stops: Vec<oneshot::Sender<()>>,
}

impl Default for Workers {
    /// One worker per CPU this process may use (cgroup quota included).
    fn default() -> Self {
        let cpus = thread::available_parallelism().map_or(1, usize::from);
        Workers::new(cpus)
    }
}

impl Workers {
    pub fn new(count: usize) -> Self {
        Workers {
            count: count.max(1),
            started: OnceLock::new(),
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The runtimes to listen and serve on, starting their threads the first time.
    pub fn handles(&self) -> Result<&[Handle], String> {
        match self.started.get_or_init(|| start(self.count)) {
            Ok(started) => Ok(&started.handles),
            Err(e) => Err(e.clone()),
        }
    }
}

fn start(count: usize) -> Result<Started, String> {
    let mut handles = Vec::with_capacity(count);
    let mut stops = Vec::with_capacity(count);
    for index in 0..count {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build gateway worker runtime {index}: {e}"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        handles.push(runtime.handle().clone());
        thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || {
                // A current-thread runtime runs its tasks only inside `block_on`.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| format!("cannot start gateway worker thread {index}: {e}"))?;
        stops.push(stop);
    }
    Ok(Started {
        handles,
        _stops: stops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_runs_tasks_on_its_own_thread() {
        let workers = Workers::new(2);
        let handles = workers.handles().unwrap();
        assert_eq!(handles.len(), 2);
        let names: Vec<String> = handles
            .iter()
            .map(|h| {
                let (tx, rx) = std::sync::mpsc::channel();
                h.spawn(async move {
                    let name = thread::current().name().map(str::to_owned);
                    tx.send(name).unwrap();
                });
                rx.recv_timeout(std::time::Duration::from_secs(5))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(names, ["gateway-worker-0", "gateway-worker-1"]);
    }

    #[test]
    fn at_least_one_worker() {
        assert_eq!(Workers::new(0).count(), 1);
        assert!(Workers::default().count() >= 1);
    }
}
