//! Running code inside a node's network namespace without changing the caller's
//! ([`edgemesh_host::in_named_netns`]), so the probes and readiness checks create their sockets
//! there.

use crate::PlaygroundError;

/// Runs `f` on a new thread that has entered the network namespace `name`.
pub(crate) fn run_in<F, T>(name: &str, f: F) -> Result<T, PlaygroundError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    edgemesh_host::in_named_netns(name, f).map_err(|error| PlaygroundError::Netns {
        name: name.to_owned(),
        reason: error.to_string(),
    })
}
