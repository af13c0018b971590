//! Behaviour of `LoadBalancer` through the `Balancer` trait, policy by policy.
// A test crate: helpers panic on purpose when the balancer misbehaves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod affinity;
mod common;
mod consistent_hash;
mod exclude;
mod lifecycle;
mod random;
mod round_robin;
