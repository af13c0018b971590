//! One background thread applies disk operations in the order they were queued, so the order
//! the cache relies on (list record removed → objects written → list record added) holds.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use super::disk;

#[derive(Debug)]
pub enum Op {
    Write(PathBuf, Vec<u8>),
    Remove(PathBuf),
    Flush(mpsc::SyncSender<()>),
}

/// Counters the admin endpoint shows.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub files_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub errors: AtomicU64,
}

/// Handle to the writer thread; the thread ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Op>,
    pub stats: Arc<WriterStats>,
}

impl Writer {
    pub fn spawn() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Op>();
        let stats = Arc::new(WriterStats::default());
        let thread_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("hub-cache-writer".into())
            .spawn(move || run(rx, &thread_stats))?;
        Ok(Self { tx, stats })
    }

    pub fn send(&self, op: Op) {
        if self.tx.send(op).is_err() {
            tracing::error!("cache writer thread is gone; the disk cache is no longer updated");
        }
    }

    /// Waits (blocking) until every operation queued before it is on disk.
    pub fn flush_blocking(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Op::Flush(tx));
        let _ = rx.recv();
    }
}

fn run(rx: mpsc::Receiver<Op>, stats: &WriterStats) {
    for op in rx {
        let result = match &op {
            Op::Write(path, bytes) => disk::write_atomic(path, bytes).inspect(|()| {
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
                Op::Write(p, _) | Op::Remove(p) => p.display().to_string(),
                Op::Flush(_) => String::new(),
            };
            tracing::warn!("cache write of {path} failed: {e}");
        }
    }
}
