//! Dev-only test kit for edgemesh: every feature is tested against the real kernel (network
//! namespaces, veth, bridges, NAT routers) and against a test double of the Kubernetes apiserver.
//!
//! - [`netns`]: one network namespace per [`netns::Netns`], deleted on drop (also on panic).
//! - [`topology`]: hosts, LANs (bridges in a switch namespace), veth links, routes, NAT routers.
//!
//! See `docs/testkit.md` for how to use each part.
#![forbid(unsafe_code)]

pub mod netns;
pub mod topology;
