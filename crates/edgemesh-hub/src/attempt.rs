//! One request sent to one upstream (a leaf: `passthrough.rs` and `watch.rs` both take it).

use std::sync::Arc;

use crate::client::Client;
use crate::request::RequestInfo;
use crate::state::State;

/// One request sent to one upstream: what forwarding it and storing its answer need besides
/// the request's head and body.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    pub state: &'a Arc<State>,
    /// The upstream, in `state.upstreams`.
    pub index: usize,
    pub info: &'a RequestInfo,
    pub client: &'a Client,
}
