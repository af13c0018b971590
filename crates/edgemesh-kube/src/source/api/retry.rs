//! How long a watcher waits after an error before asking the API server again.
//!
//! kube-runtime's default backoff grows to 30 s and only shrinks two minutes after the last
//! error, so after an apiserver restart the agent asked again up to a minute late, and the 410
//! "Expired" that follows every restart cost one more grown delay before the relist. Like
//! client-go's reflector, an expired resourceVersion is relisted at once, an unreachable or
//! overloaded server is asked again every second (cheap: the connection is refused), and only
//! other errors back off exponentially. Every successful event resets the policy.

use std::time::Duration;

use kube::runtime::watcher;

/// Retry interval while the server cannot be reached or says it is overloaded.
pub const UNREACHABLE_RETRY: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(800);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What an error says about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// 410: the resourceVersion is compacted (after a restart); the watcher relists.
    Expired,
    /// No answer, or 429/502/503/504: the server is down, restarting or shedding load.
    Unreachable,
    /// Anything else (403, 404, a bad answer): back off exponentially.
    Other,
}

pub fn cause(error: &watcher::Error) -> Cause {
    match error {
        watcher::Error::WatchError(status) => status_cause(status.code),
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => match e {
            kube::Error::Api(status) => status_cause(status.code),
            kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => Cause::Other,
            _ => Cause::Unreachable,
        },
        watcher::Error::NoResourceVersion => Cause::Other,
    }
}

fn status_cause(code: u16) -> Cause {
    match code {
        410 => Cause::Expired,
        429 | 502..=504 => Cause::Unreachable,
        _ => Cause::Other,
    }
}

/// Consecutive-failure state of one watcher.
#[derive(Debug, Default)]
pub struct Retry {
    other_failures: u32,
}

impl Retry {
    /// The pause before the watcher is polled again after `error`.
    pub fn delay(&mut self, error: &watcher::Error) -> Duration {
        match cause(error) {
            Cause::Expired => Duration::ZERO,
            Cause::Unreachable => UNREACHABLE_RETRY,
            Cause::Other => {
                let doubled = FIRST_BACKOFF.saturating_mul(1 << self.other_failures.min(6));
                self.other_failures += 1;
                doubled.min(MAX_BACKOFF)
            }
        }
    }

    /// After any successful event.
    pub fn reset(&mut self) {
        self.other_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> watcher::Error {
        let status = kube::core::Status::failure("x", "X").with_code(code);
        watcher::Error::WatchError(status.boxed())
    }

    fn refused() -> watcher::Error {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        watcher::Error::WatchStartFailed(kube::Error::Service(Box::new(io)))
    }

    #[test]
    fn an_expired_version_relists_at_once_and_an_outage_is_retried_every_second() {
        let mut retry = Retry::default();
        assert_eq!(retry.delay(&status(410)), Duration::ZERO);
        for _ in 0..20 {
            assert_eq!(retry.delay(&refused()), UNREACHABLE_RETRY);
            assert_eq!(retry.delay(&status(503)), UNREACHABLE_RETRY);
        }
        assert_eq!(
            retry.delay(&status(410)),
            Duration::ZERO,
            "after a long outage"
        );
    }

    #[test]
    fn other_errors_back_off_up_to_a_cap_and_a_success_resets_them() {
        let mut retry = Retry::default();
        let delays: Vec<_> = (0..8).map(|_| retry.delay(&status(403))).collect();
        assert_eq!(delays[0], FIRST_BACKOFF);
        assert_eq!(delays[1], FIRST_BACKOFF * 2);
        assert_eq!(delays[7], MAX_BACKOFF);
        retry.reset();
        assert_eq!(retry.delay(&status(403)), FIRST_BACKOFF);
    }
}
