//! `edgemesh playground`: a small edge cluster built from Linux network namespaces on one
//! machine — a cloud node and two LANs behind NAT routers — running the real `edgemesh agent`
//! on every node, "pods" as processes on the nodes, and the checks a user would run by hand.
//!
//! - [`plan`]: the topology as data (names, addresses, routes): pure, table-tested.
//! - [`pods`] and [`manifests`]: which pods run where, and the manifests directory every agent
//!   reads (the examples' Services and DestinationRules, plus EndpointSlices for our pods).
//! - [`agents`]: how an agent is started: the ONE place to turn the tunnel on.
//! - [`up`], [`down`], [`exec`]: the lifecycle; [`state`] remembers what was created.
//! - [`check`]: the checks, their probes and the result table.
//! - [`cli`]: the command line (`edgemesh playground ...`) and what it prints.
//! - [`pod`]: the pod programs (`edgemesh playground pod ...`): hostname, TCP/UDP/WebSocket echo.
//!
//! Nothing is created in the machine's own network stack: bridges live in a switch namespace,
//! veth pairs are created from inside namespaces, and NAT rules live in the router namespaces.
#![forbid(unsafe_code)]

pub mod agents;
mod build;
pub mod check;
pub mod cli;
pub mod down;
mod error;
pub mod exec;
mod host;
pub mod manifests;
mod netns;
pub mod plan;
pub mod pod;
pub mod pods;
mod procs;
pub mod state;
pub mod up;

pub use error::PlaygroundError;
pub use plan::Plan;

/// Where the playground keeps its state, manifests and logs (one directory per prefix).
pub const STATE_ROOT: &str = "/run/edgemesh-playground";
/// The default prefix of every namespace the playground creates.
pub const DEFAULT_PREFIX: &str = "emp";
