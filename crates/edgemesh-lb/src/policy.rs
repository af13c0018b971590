//! The pure choices: given a port's tables and a connection, which backend index.

use std::net::SocketAddr;

use edgemesh_model::HashKey;

use crate::PickContext;
use crate::hash::{ConsistentHashConfig, hash_bytes, hash_ip};
use crate::rng::RandomSource;
use crate::tables::PortCore;

fn allowed(core: &PortCore, i: usize, exclude: &[SocketAddr]) -> bool {
    exclude.is_empty() || !exclude.contains(&core.addr(i))
}

/// Round robin: the shared cursor, skipping excluded backends.
pub(crate) fn round_robin(core: &PortCore, exclude: &[SocketAddr]) -> Option<usize> {
    let n = core.len();
    if n == 0 {
        return None;
    }
    let start = core.next_rr();
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| allowed(core, i, exclude))
}

/// Uniform over the backends that are not excluded.
pub(crate) fn random(
    core: &PortCore,
    exclude: &[SocketAddr],
    rng: &impl RandomSource,
) -> Option<usize> {
    let n = core.len();
    if n == 0 {
        return None;
    }
    let first = rng.below(n);
    if allowed(core, first, exclude) {
        return Some(first);
    }
    let remaining = (0..n).filter(|&i| allowed(core, i, exclude)).count();
    if remaining == 0 {
        return None;
    }
    let nth = rng.below(remaining);
    (0..n).filter(|&i| allowed(core, i, exclude)).nth(nth)
}

/// The hash of the key a policy uses: the header value when the proxy found one, else the
/// client IP (EdgeMesh hashes an empty string then, sending every such client to one backend).
pub(crate) fn key_hash(key: &HashKey, ctx: &PickContext<'_>) -> u64 {
    match (key, ctx.http_header) {
        (HashKey::HttpHeader(_), Some(value)) => hash_bytes(value.as_bytes()),
        _ => hash_ip(ctx.client),
    }
}

/// Consistent hash: the backend that owns the key's partition (placement already caps each
/// backend's share of partitions by `load`, as EdgeMesh does), or the next allowed one clockwise
/// when it is excluded (a failed dial). Live connections never move a key: session persistence
/// is why users choose this policy, and a lingering connection must not break it.
pub(crate) fn consistent_hash(
    core: &PortCore,
    config: &ConsistentHashConfig,
    key_hash: u64,
    exclude: &[SocketAddr],
) -> Option<usize> {
    let ring = core.ring(config);
    ring.walk(ring.partition(key_hash))
        .find(|&i| allowed(core, i, exclude))
}
