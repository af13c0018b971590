//! Domain types of edgemesh.
//!
//! Sources (the Kubernetes API, a manifests directory) convert their objects into the validated
//! *specs* of [`spec`] and put them into a [`Catalog`]. The catalog builds an immutable, versioned
//! [`Snapshot`] which the data path (proxier, proxy, DNS) reads lock-free through a
//! [`SnapshotCell`]. Nothing here performs I/O.
#![forbid(unsafe_code)]

pub mod catalog;
mod cidr;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod ingress;
mod intern;
pub mod snapshot;
pub mod spec;
mod thin_str;

pub use catalog::{Catalog, Resource, ResourceKind, ResourceRef, SourceId};
pub use cidr::{Cidr, InvalidCidr};
pub use snapshot::{
    Backend, BuildOptions, BuildReport, Endpoint, Frontend, ProxyDecision, Service, ServicePort,
    SkipReason, Snapshot, SnapshotCell, SnapshotChanges,
};
pub use spec::*;
pub use thin_str::ThinStr;
