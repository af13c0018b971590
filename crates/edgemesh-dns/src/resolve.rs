//! One question in, one [`Reply`] out: the zone for cluster names, the cache and the
//! upstreams for everything else, the stale cache when the upstreams are gone.

use std::sync::Arc;
use std::time::Instant;

use edgemesh_model::SnapshotCell;
use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::sync::Semaphore;
use tracing::debug;

use crate::cache::{CacheKey, CachePolicy, CachedAnswer, DnsCache, Lookup};
use crate::config::DnsConfig;
use crate::error::DnsError;
use crate::metrics::DnsMetrics;
use crate::names::Target;
use crate::reply::Reply;
use crate::reverse::ReverseCache;
use crate::upstream::{Forwarder, UpstreamError};
use crate::zone::{Zone, ZoneAnswer};

/// Everything a query needs; shared by all listeners.
#[derive(Debug)]
pub struct Resolver {
    zone: Zone,
    snapshots: Arc<SnapshotCell>,
    reverse: ReverseCache,
    cache: DnsCache,
    forwarder: Forwarder,
    metrics: Arc<DnsMetrics>,
    cache_dns_mode: bool,
    upstream_slots: Semaphore,
}

impl Resolver {
    pub fn new(
        config: &DnsConfig,
        snapshots: Arc<SnapshotCell>,
        metrics: Arc<DnsMetrics>,
    ) -> Result<Self, DnsError> {
        let ttl = u32::try_from(config.ttl.as_secs()).unwrap_or(u32::MAX);
        let zone = Zone::new(&config.cluster_domain, ttl).map_err(|reason| {
            DnsError::InvalidClusterDomain {
                domain: config.cluster_domain.clone(),
                reason,
            }
        })?;
        let policy = CachePolicy {
            max_ttl: config.cache_ttl,
            serve_stale_for: config.serve_stale_for,
            stale_answer_ttl: config.stale_answer_ttl,
            capacity: config.cache_capacity.max(1),
        };
        Ok(Self {
            zone,
            snapshots,
            reverse: ReverseCache::default(),
            cache: DnsCache::new(policy),
            forwarder: Forwarder::new(
                config.upstreams.clone(),
                config.upstream_timeout,
                Arc::clone(&config.sockets),
            ),
            metrics,
            cache_dns_mode: config.cache_dns_mode,
            upstream_slots: Semaphore::new(config.max_upstream_inflight.max(1)),
        })
    }

    pub fn metrics(&self) -> &Arc<DnsMetrics> {
        &self.metrics
    }

    pub fn snapshots(&self) -> &Arc<SnapshotCell> {
        &self.snapshots
    }

    pub async fn resolve(&self, query: &Query, recursion_desired: bool) -> Reply {
        match self.zone.classify(query.name()) {
            Target::Cluster(_) => self.cluster(query, recursion_desired).await,
            Target::Reverse(ip) => {
                let snapshot = self.snapshots.load();
                let index = self.reverse.get(&snapshot);
                let targets = index.1.names(&self.zone, ip);
                match self
                    .zone
                    .answer_ptr(query.name(), targets, query.query_type())
                {
                    Some(answer) => self.local(answer),
                    None => self.forward(query, recursion_desired).await,
                }
            }
            Target::Elsewhere => self.forward(query, recursion_desired).await,
        }
    }

    async fn cluster(&self, query: &Query, recursion_desired: bool) -> Reply {
        let snapshot = self.snapshots.load();
        if snapshot.version == 0 {
            // Nothing published yet: an NXDOMAIN now would be cached by clients for names
            // that exist. SERVFAIL makes them retry (cacheDNS mode asks the cluster DNS).
            return match self.cache_dns_mode {
                true => self.forward(query, recursion_desired).await,
                false => Reply::error(ResponseCode::ServFail),
            };
        }
        let answer = self
            .zone
            .answer(&snapshot, query.name(), query.query_type());
        drop(snapshot);
        if self.cache_dns_mode
            && answer.rcode == ResponseCode::NXDomain
            && answer.answers.is_empty()
        {
            let upstream = self.forward(query, recursion_desired).await;
            if upstream.rcode != ResponseCode::ServFail {
                return upstream;
            }
        }
        match answer.chase.clone() {
            Some(target) => {
                self.chase(answer, target, query.query_type(), recursion_desired)
                    .await
            }
            None => self.local(answer),
        }
    }

    /// An ExternalName pointing outside the zone: the CNAME chain so far, then the upstream's
    /// answer for the target (one forwarded hop; the upstream resolves further CNAMEs).
    async fn chase(&self, answer: ZoneAnswer, target: Name, qtype: RecordType, rd: bool) -> Reply {
        let upstream = self.forward(&Query::query(target, qtype), rd).await;
        let mut reply = self.local(answer);
        reply.authoritative = false;
        reply.rcode = upstream.rcode;
        reply.answers.extend(upstream.answers);
        reply.authorities = upstream.authorities;
        reply
    }

    fn local(&self, answer: ZoneAnswer) -> Reply {
        self.metrics.cluster_answer();
        Reply {
            rcode: answer.rcode,
            authoritative: true,
            answers: answer.answers,
            authorities: answer.authorities,
            additionals: answer.additionals,
        }
    }

    /// Fresh cache, else the upstreams, else the stale cache, else SERVFAIL.
    async fn forward(&self, query: &Query, recursion_desired: bool) -> Reply {
        let key = CacheKey::new(query.name(), query.query_type(), query.query_class());
        let stale = match self.cache.lookup(&key, Instant::now()) {
            Lookup::Fresh(answer) => {
                self.metrics.cache_hit();
                return from_cache(answer);
            }
            Lookup::Stale(answer) => Some(answer),
            Lookup::Miss => None,
        };
        self.metrics.forwarded();
        let exchange = match self.upstream_slots.try_acquire() {
            Ok(_slot) => self.forwarder.forward(query, recursion_desired).await,
            Err(_) => Err(UpstreamError::Busy),
        };
        match exchange {
            Ok(exchange) => {
                if exchange.retried_over_tcp {
                    self.metrics.tcp_retry();
                }
                let message = exchange.message;
                let answer = CachedAnswer {
                    rcode: message.metadata.response_code,
                    answers: message.answers,
                    authorities: message.authorities,
                };
                from_cache(self.cache.insert(key, answer, Instant::now()))
            }
            Err(error) => {
                self.metrics.upstream_failure();
                debug!(%error, name = %query.name(), "upstream failed");
                match stale {
                    Some(answer) => {
                        self.metrics.stale_answer();
                        from_cache(answer)
                    }
                    None => Reply::error(ResponseCode::ServFail),
                }
            }
        }
    }
}

fn from_cache(answer: CachedAnswer) -> Reply {
    Reply {
        rcode: answer.rcode,
        authoritative: false,
        answers: answer.answers,
        authorities: answer.authorities,
        additionals: Vec::new(),
    }
}
