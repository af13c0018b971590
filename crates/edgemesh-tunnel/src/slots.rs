//! Opens waiting for a peer's stream slots (`shared::StreamSlots`), which idle UDP flows make
//! room for (`udp.rs`). A leaf: `shared.rs` holds one per peer, `stats.rs` one per stream.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// How many opens wait for one of a peer's stream slots. A remote UDP flow holds its stream
/// until it has been idle for `udpIdleTimeout` (120 s by default), so past the 2,000 slots new
/// flows queued behind flows that had long gone quiet and failed after the slot wait (60 s);
/// while opens wait, a flow idle for [`crate::udp::YIELD_IDLE`] gives its slot up instead.
#[derive(Debug, Default)]
pub(crate) struct SlotPressure {
    waiting: AtomicUsize,
    changed: Notify,
}

impl SlotPressure {
    /// Counts one waiting open until the returned guard is dropped.
    pub fn wait(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
        Waiting(self)
    }

    /// Whether any open waits now.
    pub fn any_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// Resolves once an open waits (at once if one does).
    pub async fn until_waiting(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a waiter counted after it still wakes us.
            changed.as_mut().enable();
            if self.any_waiting() {
                return;
            }
            changed.await;
        }
    }
}

/// One open waiting for a slot (see [`SlotPressure::wait`]).
pub(crate) struct Waiting<'a>(&'a SlotPressure);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}
