//! Where objects come from.

pub mod api;
pub mod documents;
pub mod manifests;
