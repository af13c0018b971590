//! The last time any byte moved, shared by both directions of a copy (and by the proxy's UDP
//! sessions, which time out the same way).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

/// Milliseconds since the copy started at which bytes last moved (tokio's clock, so tests can
/// pause time).
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Relaxed);
    }

    /// When something last moved (the creation time until the first [`Activity::touch`]).
    pub fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Relaxed))
    }

    /// Resolves once nothing has moved for `idle`. Each wake-up either returns or sleeps until
    /// a strictly later deadline, so the loop ends.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = self.last() + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_fires_only_after_a_quiet_period() {
        let activity = Activity::new();
        let idle = Duration::from_secs(60);
        tokio::time::sleep(Duration::from_secs(50)).await;
        activity.touch();
        let start = Instant::now();
        activity.idle_for(idle).await;
        // Fired 60 s after the touch, not 60 s after the start.
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }
}
