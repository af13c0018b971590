//! Running code inside a node's network namespace without changing the caller's: a fresh
//! thread `setns()`s into it, so the probes and readiness checks create their sockets there.

use std::fs::File;

use nix::sched::{CloneFlags, setns};

use crate::PlaygroundError;

/// Runs `f` on a new thread that has entered the network namespace `name`.
pub(crate) fn run_in<F, T>(name: &str, f: F) -> Result<T, PlaygroundError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let failed = |reason: String| PlaygroundError::Netns {
        name: name.to_owned(),
        reason,
    };
    let path = format!("/run/netns/{name}");
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
            Ok(f())
        });
        match handle.join() {
            Ok(result) => result.map_err(failed),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
