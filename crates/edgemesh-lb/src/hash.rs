//! Consistent hashing with bounded loads, shaped like EdgeMesh's (which uses the Go library
//! buraksezer/consistent):
//!
//! - every backend is placed `replication_factor` times on a 64-bit ring;
//! - the key space is cut into `partition_count` partitions; partition `p` hashes to a point on
//!   the ring and belongs to the first backend clockwise whose partition count is still below
//!   `ceil(partition_count / backends * load)` (so no backend owns much more than its share);
//! - a key belongs to partition `hash(key) % partition_count`.
//!
//! Live connections do not move keys (EdgeMesh's behaviour too): a key stays on its backend
//! until that backend leaves the set or a dial to it fails.
//!
//! The hash is FNV-1a followed by the SplitMix64 finaliser: deterministic across processes and
//! versions (every agent maps a key to the same backend) and well mixed for short inputs.

use std::net::{IpAddr, SocketAddr};

use edgemesh_model::Backend;

use crate::rng::mix64;

/// `modules.edgeProxy.loadBalancer.consistentHash` of EdgeMesh's agent configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsistentHashConfig {
    /// Number of partitions the key space is cut into (`partitionCount`).
    pub partition_count: usize,
    /// Points per backend on the ring (`replicationFactor`).
    pub replication_factor: usize,
    /// How far above the average a backend's load may go (`load`, at least 1.0).
    pub load: f64,
}

impl Default for ConsistentHashConfig {
    /// EdgeMesh's defaults: 100 partitions, 10 replicas, load 1.25.
    fn default() -> Self {
        Self {
            partition_count: 100,
            replication_factor: 10,
            load: 1.25,
        }
    }
}

/// A consistent-hash parameter out of range; the message names the EdgeMesh key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("consistentHash.partitionCount must be between 1 and {max}, got {got}")]
    PartitionCount { got: usize, max: usize },
    #[error("consistentHash.replicationFactor must be between 1 and {max}, got {got}")]
    ReplicationFactor { got: usize, max: usize },
    #[error(
        "consistentHash.load must be a finite number of at least 1.0 (default 1.25), got {got}"
    )]
    Load { got: f64 },
}

impl ConsistentHashConfig {
    /// Upper limits that keep the per-frontend tables small.
    pub const MAX_PARTITIONS: usize = 1 << 16;
    pub const MAX_REPLICATION: usize = 1 << 10;

    /// Checks the ranges the algorithm needs (a load below 1 could leave partitions unplaced).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=Self::MAX_PARTITIONS).contains(&self.partition_count) {
            return Err(ConfigError::PartitionCount {
                got: self.partition_count,
                max: Self::MAX_PARTITIONS,
            });
        }
        if !(1..=Self::MAX_REPLICATION).contains(&self.replication_factor) {
            return Err(ConfigError::ReplicationFactor {
                got: self.replication_factor,
                max: Self::MAX_REPLICATION,
            });
        }
        if !self.load.is_finite() || self.load < 1.0 {
            return Err(ConfigError::Load { got: self.load });
        }
        Ok(())
    }
}

/// FNV-1a over `bytes`, then a full-avalanche finaliser.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix64(h)
}

/// Hash of a client IP (its octets; the source port is deliberately left out).
pub(crate) fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => hash_bytes(&v4.octets()),
        IpAddr::V6(v6) => hash_bytes(&v6.octets()),
    }
}

/// Hash of replica `replica` of the backend at `addr`.
fn hash_point(addr: SocketAddr, replica: u32) -> u64 {
    let mut buf = [0u8; 22];
    let len = match addr.ip() {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            buf[..16].copy_from_slice(&v6.octets());
            16
        }
    };
    buf[len..len + 2].copy_from_slice(&addr.port().to_be_bytes());
    buf[len + 2..len + 6].copy_from_slice(&replica.to_le_bytes());
    hash_bytes(&buf[..len + 6])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    hash: u64,
    backend: u32,
}

/// The ring and the partition table of one backend set.
#[derive(Debug)]
pub(crate) struct HashRing {
    points: Box<[Point]>,
    /// Partition → index in `points` of the point whose backend owns it.
    owners: Box<[u32]>,
}

impl HashRing {
    pub(crate) fn build(backends: &[Backend], config: &ConsistentHashConfig) -> Self {
        let mut points: Vec<Point> = backends
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                (0..config.replication_factor as u32).map(move |r| Point {
                    hash: hash_point(b.addr, r),
                    backend: i as u32,
                })
            })
            .collect();
        points.sort_unstable();
        let owners = place_partitions(&points, backends.len(), config);
        Self {
            points: points.into_boxed_slice(),
            owners,
        }
    }

    /// The partition a key hash falls into.
    pub(crate) fn partition(&self, key_hash: u64) -> usize {
        (key_hash % self.owners.len().max(1) as u64) as usize
    }

    /// Backend indices clockwise from the owner of `partition` (each point once; a backend
    /// appears once per replica).
    pub(crate) fn walk(&self, partition: usize) -> impl Iterator<Item = usize> + '_ {
        let start = self.owners.get(partition).copied().unwrap_or(0) as usize;
        let len = self.points.len();
        (0..len).map(move |k| self.points[(start + k) % len].backend as usize)
    }

    /// The backend that statically owns `partition` (ignoring live load).
    #[cfg(test)]
    pub(crate) fn owner(&self, partition: usize) -> Option<usize> {
        self.walk(partition).next()
    }
}

/// buraksezer/consistent's `distributePartitions`: each partition goes to the first backend
/// clockwise from its hash that owns fewer than `ceil(partitions / backends * load)` partitions.
fn place_partitions(
    points: &[Point],
    backends: usize,
    config: &ConsistentHashConfig,
) -> Box<[u32]> {
    if points.is_empty() {
        return Box::default();
    }
    let cap = (config.partition_count as f64 / backends as f64 * config.load).ceil() as usize;
    let mut owned = vec![0usize; backends];
    (0..config.partition_count as u64)
        .map(|p| {
            let h = hash_bytes(&p.to_le_bytes());
            let first = points.partition_point(|pt| pt.hash < h) % points.len();
            // With load >= 1 the caps add up to at least the partition count, so a backend
            // under its cap always exists; `first` is only a defensive fallback.
            let found = (0..points.len())
                .map(|k| (first + k) % points.len())
                .find(|&i| owned[points[i].backend as usize] < cap)
                .unwrap_or(first);
            owned[points[found].backend as usize] += 1;
            found as u32
        })
        .collect()
}

#[cfg(test)]
mod tests;
