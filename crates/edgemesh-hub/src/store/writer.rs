//! One background thread applies disk operations in the order they were queued, so the order
//! the cache relies on (list record removed → objects written → list record added) holds.
//!
//! The queue coalesces: a newer write (or removal) of an object file still waiting replaces the
//! waiting one *in its place*, so the queue holds at most one operation per object file and a
//! relist storm costs no more memory than one copy of the objects. Replacing in place keeps the
//! order the crash safety needs (every object of a list is on disk, maybe newer, before its
//! record). Writes of a metadata file are never moved or merged: their order against the
//! objects is the crash-safety protocol itself.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};

use super::disk;

#[derive(Debug)]
pub enum Op {
    /// An object or discovery file: a newer operation on the same file replaces it in place.
    Write(PathBuf, Vec<u8>),
    /// A metadata file: kept in order, never merged.
    WriteInOrder(PathBuf, Vec<u8>),
    Remove(PathBuf),
    Flush(mpsc::SyncSender<()>),
}

impl Op {
    /// The file whose waiting operation this one may replace.
    fn coalesces_on(&self) -> Option<&PathBuf> {
        match self {
            Op::Write(path, _) | Op::Remove(path) => Some(path),
            Op::WriteInOrder(..) | Op::Flush(_) => None,
        }
    }
}

/// Counters the admin endpoint shows.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub files_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub errors: AtomicU64,
    /// Operations replaced by a newer one before they reached the disk.
    pub coalesced: AtomicU64,
}

/// Operations waiting, oldest first, with where each coalescable file's operation sits.
#[derive(Debug, Default)]
struct Queue {
    ops: VecDeque<Op>,
    /// Sequence number of `ops[0]`.
    front: u64,
    waiting: HashMap<PathBuf, u64>,
    closed: bool,
}

impl Queue {
    fn push(&mut self, op: Op) -> bool {
        if let Some(path) = op.coalesces_on()
            && let Some(&seq) = self.waiting.get(path)
            && let Some(slot) = usize::try_from(seq - self.front)
                .ok()
                .and_then(|i| self.ops.get_mut(i))
        {
            *slot = op;
            return true;
        }
        if let Some(path) = op.coalesces_on() {
            let seq = self.front + self.ops.len() as u64;
            self.waiting.insert(path.clone(), seq);
        }
        self.ops.push_back(op);
        false
    }

    fn pop(&mut self) -> Option<Op> {
        let op = self.ops.pop_front()?;
        if let Some(path) = op.coalesces_on()
            && self.waiting.get(path) == Some(&self.front)
        {
            self.waiting.remove(path);
        }
        self.front += 1;
        Some(op)
    }
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to the writer thread; the thread ends when the last handle is dropped.
#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
    pub stats: Arc<WriterStats>,
}

impl Writer {
    pub fn spawn() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let stats = Arc::new(WriterStats::default());
        let (thread_shared, thread_stats) = (Arc::clone(&shared), Arc::clone(&stats));
        std::thread::Builder::new()
            .name("hub-cache-writer".into())
            .spawn(move || run(&thread_shared, &thread_stats))?;
        Ok(Self { shared, stats })
    }

    pub fn send(&self, op: Op) {
        let replaced = self.shared.lock().push(op);
        if replaced {
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.ready.notify_one();
    }

    /// Waits (blocking) until every operation queued before it is on disk.
    pub fn flush_blocking(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Op::Flush(tx));
        let _ = rx.recv();
    }

    /// Operations waiting (tests, and the admin endpoint's view of the backlog).
    pub fn backlog(&self) -> usize {
        self.shared.lock().ops.len()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_one();
    }
}

fn run(shared: &Shared, stats: &WriterStats) {
    loop {
        let op = {
            let mut queue = shared.lock();
            loop {
                if let Some(op) = queue.pop() {
                    break op;
                }
                if queue.closed {
                    return;
                }
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        apply(op, stats);
    }
}

fn apply(op: Op, stats: &WriterStats) {
    let result = match &op {
        Op::Write(path, bytes) | Op::WriteInOrder(path, bytes) => disk::write_atomic(path, bytes)
            .inspect(|()| {
                stats.files_written.fetch_add(1, Ordering::Relaxed);
                stats
                    .bytes_written
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }),
        Op::Remove(path) => disk::remove_durable(path),
        Op::Flush(done) => {
            let _ = done.send(());
            Ok(())
        }
    };
    if let Err(e) = result {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        let path = match &op {
            Op::Write(p, _) | Op::WriteInOrder(p, _) | Op::Remove(p) => p.display().to_string(),
            Op::Flush(_) => String::new(),
        };
        tracing::warn!(%path, error = %e, "cache write failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(queue: &Queue) -> Vec<String> {
        queue
            .ops
            .iter()
            .map(|op| match op {
                Op::Write(p, b) => format!("w {} {}", p.display(), String::from_utf8_lossy(b)),
                Op::WriteInOrder(p, b) => {
                    format!("m {} {}", p.display(), String::from_utf8_lossy(b))
                }
                Op::Remove(p) => format!("rm {}", p.display()),
                Op::Flush(_) => "flush".into(),
            })
            .collect()
    }

    #[test]
    fn object_writes_coalesce_in_place_and_metadata_keeps_its_order() {
        let mut q = Queue::default();
        let w = |p: &str, b: &str| Op::Write(p.into(), b.as_bytes().to_vec());
        let m = |b: &str| Op::WriteInOrder("meta".into(), b.as_bytes().to_vec());
        // Two relists of the same list, queued before the disk caught up.
        q.push(m("withdrawn"));
        q.push(w("a", "1"));
        q.push(w("b", "1"));
        q.push(m("complete 1"));
        q.push(m("withdrawn"));
        assert!(q.push(w("a", "2")));
        assert!(q.push(Op::Remove("b".into())));
        q.push(m("complete 2"));
        assert_eq!(
            names(&q),
            [
                "m meta withdrawn",
                "w a 2",
                "rm b",
                "m meta complete 1",
                "m meta withdrawn",
                "m meta complete 2"
            ]
        );
        // Once written, a file's next operation queues anew.
        while q.pop().is_some() {}
        assert!(!q.push(w("a", "3")));
        assert_eq!(names(&q), ["w a 3"]);
    }

    #[test]
    fn a_relist_storm_keeps_one_operation_per_file() {
        let mut q = Queue::default();
        for round in 0..200 {
            q.push(Op::WriteInOrder("meta".into(), vec![]));
            for pod in 0..300 {
                let bytes = format!("pod {pod} round {round}").into_bytes();
                q.push(Op::Write(format!("pods/{pod}").into(), bytes));
            }
            q.push(Op::WriteInOrder("meta".into(), vec![]));
        }
        assert_eq!(q.ops.len(), 300 + 2 * 200);
    }
}
