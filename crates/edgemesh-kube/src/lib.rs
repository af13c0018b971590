//! Service discovery: the ONLY crate that speaks Kubernetes types.
//!
//! Sources (the Kubernetes API and a manifests directory) convert objects into validated model
//! specs ([`convert`]) and send [`SourceEvent`]s to the [`publisher`], which applies them to one
//! [`Catalog`](edgemesh_model::Catalog), rebuilds the Snapshot off the hot path (debounced) and
//! publishes it.
//!
//! [`target`] turns the API endpoint EdgeMesh's config names into a client ([`client`]).
#![forbid(unsafe_code)]

pub mod client;
pub mod convert;
mod inputs;
pub mod metrics;
pub mod publisher;
mod readiness;
pub mod source;
pub mod target;

pub use inputs::Inputs;
pub use publisher::{Publisher, SourceEvent};
pub use readiness::Readiness;
