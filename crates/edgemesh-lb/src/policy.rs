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

/// Most live connections a backend may hold before a new one is placed on it:
/// `ceil(load * (live + 1) / backends)`, never below 1.
pub(crate) fn load_cap(live: usize, backends: usize, load: f64) -> usize {
    let cap = (load * (live as f64 + 1.0) / backends.max(1) as f64).ceil();
    (cap as usize).max(1)
}

/// Consistent hash with bounded load: the partition's backend, or the next one clockwise that
/// is under the live-connection cap. When every allowed backend is at the cap (possible only
/// with exclusions) the first allowed one clockwise is returned.
pub(crate) fn consistent_hash(
    core: &PortCore,
    config: &ConsistentHashConfig,
    key_hash: u64,
    live: usize,
    exclude: &[SocketAddr],
) -> Option<usize> {
    let ring = core.ring(config);
    let cap = load_cap(live, core.len(), config.load);
    let mut first_allowed = None;
    for i in ring.walk(ring.partition(key_hash)) {
        if !allowed(core, i, exclude) {
            continue;
        }
        if core.load(i) < cap {
            return Some(i);
        }
        first_allowed.get_or_insert(i);
    }
    first_allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_cap_matches_the_formula() {
        // (live, backends, load, cap)
        let cases = [
            (0, 3, 1.25, 1),
            (2, 3, 1.25, 2),
            (11, 4, 1.25, 4),
            (99, 10, 1.25, 13),
            (100, 100, 1.0, 2),
            (5, 0, 1.25, 8),
        ];
        for (live, n, load, want) in cases {
            assert_eq!(
                load_cap(live, n, load),
                want,
                "live={live} n={n} load={load}"
            );
        }
    }
}
