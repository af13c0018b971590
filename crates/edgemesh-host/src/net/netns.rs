//! Running code inside a named network namespace (`ip netns add NAME`) without changing the
//! caller's: a fresh thread `setns()`s into it, so the sockets `f` opens belong to that
//! namespace. The one way the agent's netfilter runner, the playground and the test kit do it.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

/// Where `ip netns` keeps its namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Runs `f` on a new thread that has entered the network namespace `name`; the error says why
/// the namespace could not be entered. A panic in `f` continues in the caller.
pub fn in_named_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let path = Path::new(NETNS_RUN_DIR).join(name);
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            let file = File::open(&path).map_err(|error| {
                io::Error::new(error.kind(), format!("{}: {error}", path.display()))
            })?;
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|error| {
                io::Error::other(format!("setns into {}: {error}", path.display()))
            })?;
            Ok(f())
        });
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
