//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use crate::agents::CacheAgents;
use crate::config::AnswerLimits;
use crate::creds::OwnToken;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Cache;
use crate::upstream::{Clients, Upstream};

#[derive(Debug)]
pub struct State {
    pub cache: Arc<Cache>,
    pub agents: Arc<CacheAgents>,
    pub health: Arc<Health>,
    pub upstreams: Arc<Vec<Upstream>>,
    pub clients: Clients,
    pub metrics: Metrics,
    /// How often an offline watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How long an answer being buffered for the cache may go without a byte.
    pub body_stall_timeout: Duration,
    pub answer_limits: AnswerLimits,
    /// The node's identity, for the hub's own requests and node components on the plain front.
    pub own_token: OwnToken,
}
