//! Cache of upstream answers with serve-stale (RFC 8767).
//!
//! Time is an input (`now`), so expiry and the stale window are tested without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState as FastHash;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// What a cache entry is looked up by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    name: Name,
    qtype: RecordType,
    qclass: DNSClass,
}

impl CacheKey {
    pub fn new(name: &Name, qtype: RecordType, qclass: DNSClass) -> Self {
        Self {
            name: name.to_lowercase(),
            qtype,
            qclass,
        }
    }
}

/// An answer as the client gets it (TTLs already adjusted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedAnswer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

/// Result of a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Fresh(CachedAnswer),
    /// Expired but inside the serve-stale window: use only when no upstream answers.
    Stale(CachedAnswer),
    Miss,
}

#[derive(Debug)]
struct Entry {
    answer: CachedAnswer,
    stored: Instant,
    ttl: Duration,
}

/// Bounds of the cache.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    pub max_ttl: Duration,
    pub serve_stale_for: Duration,
    pub stale_answer_ttl: Duration,
    pub capacity: usize,
}

/// A bounded map of answers; a short mutex section per lookup or insert.
#[derive(Debug)]
pub struct DnsCache {
    policy: CachePolicy,
    entries: Mutex<HashMap<CacheKey, Entry, FastHash>>,
}

impl DnsCache {
    pub fn new(policy: CachePolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::default()),
        }
    }

    pub fn lookup(&self, key: &CacheKey, now: Instant) -> Lookup {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = entries.get(key) else {
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(entry.stored);
        if age < entry.ttl {
            let left = secs(entry.ttl - age).max(1);
            return Lookup::Fresh(with_ttl(&entry.answer, |ttl| ttl.min(left)));
        }
        if age < entry.ttl + self.policy.serve_stale_for {
            let stale = secs(self.policy.stale_answer_ttl);
            return Lookup::Stale(with_ttl(&entry.answer, |_| stale));
        }
        Lookup::Miss
    }

    /// Stores an upstream answer (only NOERROR and NXDOMAIN are worth keeping) and returns it
    /// as clients should see it: no TTL above the cache's maximum, so clients do not keep a
    /// name longer than we would.
    pub fn insert(&self, key: CacheKey, answer: CachedAnswer, now: Instant) -> CachedAnswer {
        let max = secs(self.policy.max_ttl);
        let answer = with_ttl(&answer, |ttl| ttl.min(max));
        if !matches!(answer.rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
            return answer;
        }
        let ttl = cache_ttl(&answer).min(self.policy.max_ttl);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.policy.capacity && !entries.contains_key(&key) {
            self.make_room(&mut entries, now);
        }
        entries.insert(
            key,
            Entry {
                answer: answer.clone(),
                stored: now,
                ttl,
            },
        );
        answer
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops what is past the stale window, then (if still full) the oldest entry.
    fn make_room(&self, entries: &mut HashMap<CacheKey, Entry, FastHash>, now: Instant) {
        let window = self.policy.serve_stale_for;
        entries.retain(|_, e| now.saturating_duration_since(e.stored) < e.ttl + window);
        if entries.len() < self.policy.capacity {
            return;
        }
        let oldest = entries
            .iter()
            .min_by_key(|(_, e)| e.stored)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            entries.remove(&oldest);
        }
    }
}

/// The answer's own lifetime: the smallest record TTL, or for a negative answer the SOA's
/// negative TTL (RFC 2308: min of the SOA record's TTL and its MINIMUM field).
fn cache_ttl(answer: &CachedAnswer) -> Duration {
    let seconds = if answer.answers.is_empty() {
        answer
            .authorities
            .iter()
            .filter_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .min()
            .unwrap_or(0)
    } else {
        answer.answers.iter().map(|r| r.ttl).min().unwrap_or(0)
    };
    Duration::from_secs(u64::from(seconds))
}

fn with_ttl(answer: &CachedAnswer, ttl: impl Fn(u32) -> u32) -> CachedAnswer {
    let adjust = |records: &[Record]| {
        records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.ttl = ttl(r.ttl);
                r
            })
            .collect()
    };
    CachedAnswer {
        rcode: answer.rcode,
        answers: adjust(&answer.answers),
        authorities: adjust(&answer.authorities),
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};

    const T: Duration = Duration::from_secs(1);

    fn cache(capacity: usize) -> DnsCache {
        DnsCache::new(CachePolicy {
            max_ttl: 30 * T,
            serve_stale_for: 100 * T,
            stale_answer_ttl: 7 * T,
            capacity,
        })
    }

    fn key(n: &str) -> CacheKey {
        CacheKey::new(&Name::from_ascii(n).unwrap(), RecordType::A, DNSClass::IN)
    }

    fn positive(ttl: u32) -> CachedAnswer {
        let name = Name::from_ascii("a.example.").unwrap();
        CachedAnswer {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                name,
                ttl,
                RData::A(A([192, 0, 2, 1].into())),
            )],
            authorities: vec![],
        }
    }

    fn ttl_of(l: Lookup) -> Option<(bool, u32)> {
        match l {
            Lookup::Fresh(a) => Some((true, a.answers[0].ttl)),
            Lookup::Stale(a) => Some((false, a.answers[0].ttl)),
            Lookup::Miss => None,
        }
    }

    #[test]
    fn fresh_then_stale_then_gone() {
        let c = cache(10);
        let t0 = Instant::now();
        let shown = c.insert(key("a.example."), positive(300), t0);
        assert_eq!(shown.answers[0].ttl, 30, "capped by max_ttl");
        let k = key("A.EXAMPLE.");
        let table = [
            (0, Some((true, 30))),
            (10, Some((true, 20))),
            (30, Some((false, 7))),
            (129, Some((false, 7))),
            (130, None),
        ];
        for (after, expected) in table {
            assert_eq!(
                ttl_of(c.lookup(&k, t0 + after * T)),
                expected,
                "after {after}s"
            );
        }
    }

    #[test]
    fn short_record_ttls_win_and_servfail_is_not_kept() {
        let c = cache(10);
        let t0 = Instant::now();
        c.insert(key("a.example."), positive(5), t0);
        assert_eq!(
            ttl_of(c.lookup(&key("a.example."), t0 + 5 * T)),
            Some((false, 7))
        );
        let mut fail = positive(5);
        fail.rcode = ResponseCode::ServFail;
        c.insert(key("b.example."), fail, t0);
        assert_eq!(c.lookup(&key("b.example."), t0), Lookup::Miss);
    }

    #[test]
    fn negative_answers_live_for_the_soa_minimum() {
        let c = cache(10);
        let t0 = Instant::now();
        let zone = Name::from_ascii("example.").unwrap();
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 1, 1, 1, 12);
        let nx = CachedAnswer {
            rcode: ResponseCode::NXDomain,
            answers: vec![],
            authorities: vec![Record::from_rdata(zone, 3600, RData::SOA(soa))],
        };
        c.insert(key("x.example."), nx, t0);
        assert!(matches!(
            c.lookup(&key("x.example."), t0 + 11 * T),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            c.lookup(&key("x.example."), t0 + 12 * T),
            Lookup::Stale(_)
        ));
    }

    #[test]
    fn capacity_is_a_hard_bound_that_evicts_the_oldest() {
        let c = cache(3);
        let t0 = Instant::now();
        for i in 0..5u32 {
            c.insert(key(&format!("n{i}.example.")), positive(300), t0 + i * T);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(&key("n0.example."), t0 + 5 * T), Lookup::Miss);
        assert!(matches!(
            c.lookup(&key("n4.example."), t0 + 5 * T),
            Lookup::Fresh(_)
        ));
    }
}
