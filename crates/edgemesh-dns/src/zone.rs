//! The cluster zone: a pure function from (Snapshot, query) to records and a response code.

use std::net::IpAddr;

use edgemesh_model::{Endpoint, ObjectKey, Service, ServiceKind, Snapshot};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::names::{ClusterName, Target, classify, dashed_ip};

/// How many ExternalName → cluster-name hops are followed inside the zone.
pub const MAX_CNAME_CHAIN: usize = 8;

/// The cluster domain and the TTL of its answers.
#[derive(Clone, Debug)]
pub struct Zone {
    domain: Name,
    ttl: u32,
}

/// The zone's answer to one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneAnswer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    /// The SOA on negative answers (NXDOMAIN and NODATA), for negative caching.
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// An ExternalName target outside the zone whose addresses the caller should add.
    pub chase: Option<Name>,
}

impl Zone {
    /// `domain` must be a valid name; it is made lowercase and fully qualified.
    pub fn new(domain: &str, ttl: u32) -> Result<Self, String> {
        let mut domain = Name::from_ascii(domain).map_err(|e| e.to_string())?;
        if domain.is_root() {
            return Err("the root cannot be the cluster domain".into());
        }
        domain.set_fqdn(true);
        Ok(Self {
            domain: domain.to_lowercase(),
            ttl,
        })
    }

    pub fn domain(&self) -> &Name {
        &self.domain
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Where `qname` belongs (see [`classify`]).
    pub fn classify(&self, qname: &Name) -> Target {
        classify(&qname.to_lowercase(), &self.domain)
    }

    /// `svc.ns.svc.<domain>`
    pub fn service_name(&self, key: &ObjectKey) -> Option<Name> {
        Name::from_labels([key.name.as_bytes(), key.namespace.as_bytes(), b"svc"])
            .ok()?
            .append_domain(&self.domain)
            .ok()
    }

    /// `host.svc.ns.svc.<domain>` with the hostname or the dashed IP.
    pub fn endpoint_name(&self, key: &ObjectKey, endpoint: &Endpoint) -> Option<Name> {
        let host = endpoint
            .hostname
            .as_deref()
            .map_or_else(|| dashed_ip(endpoint.ip), str::to_owned);
        Name::from_labels([host.as_bytes()])
            .ok()?
            .append_name(&self.service_name(key)?)
            .ok()
    }

    /// Answers a question about a name under the cluster domain; `qname` is echoed in records.
    pub fn answer(&self, snapshot: &Snapshot, qname: &Name, qtype: RecordType) -> ZoneAnswer {
        let mut out = ZoneAnswer::empty();
        self.answer_into(snapshot, qname, qtype, 0, &mut out);
        self.finish(out)
    }

    /// Answers a PTR question whose IP has `targets` as names (from the reverse index); `None`
    /// when it has none, i.e. the IP is not ours.
    pub fn answer_ptr(
        &self,
        qname: &Name,
        targets: Vec<Name>,
        qtype: RecordType,
    ) -> Option<ZoneAnswer> {
        if targets.is_empty() {
            return None;
        }
        let mut out = ZoneAnswer::empty();
        if matches!(qtype, RecordType::PTR | RecordType::ANY) {
            for target in targets {
                out.answers
                    .push(self.record(qname, RData::PTR(PTR(target.clone()))));
            }
        }
        Some(self.finish(out))
    }

    fn answer_into(
        &self,
        snapshot: &Snapshot,
        qname: &Name,
        qtype: RecordType,
        depth: usize,
        out: &mut ZoneAnswer,
    ) {
        let Target::Cluster(shape) = self.classify(qname) else {
            out.chase = Some(qname.clone());
            return;
        };
        let exists = match shape {
            ClusterName::Apex => {
                if qtype == RecordType::SOA {
                    out.answers.push(self.soa());
                }
                true
            }
            ClusterName::EmptyZone => true,
            ClusterName::Namespace { ns } => namespace_exists(snapshot, &ns),
            ClusterName::Service { ns, svc } => match lookup(snapshot, &ns, &svc) {
                Some(s) => self.service(snapshot, s, qname, qtype, depth, out),
                None => false,
            },
            ClusterName::Endpoint { ns, svc, host } => lookup(snapshot, &ns, &svc)
                .and_then(|s| s.endpoints.iter().find(|e| endpoint_matches(e, &host)))
                .map(|e| self.addresses(qname, qtype, [e.ip], &mut out.answers))
                .is_some(),
            ClusterName::Srv {
                ns,
                svc,
                port,
                proto,
            } => lookup(snapshot, &ns, &svc)
                .map(|s| self.srv(s, qname, qtype, Some((&port, &proto)), out))
                .unwrap_or(false),
            ClusterName::Pod { ip } => ip
                .map(|ip| self.addresses(qname, qtype, [ip], &mut out.answers))
                .is_some(),
            ClusterName::Unknown => false,
        };
        if !exists {
            out.rcode = ResponseCode::NXDomain;
        }
    }

    /// Records of a service name; returns whether the name exists.
    fn service(
        &self,
        snapshot: &Snapshot,
        service: &Service,
        qname: &Name,
        qtype: RecordType,
        depth: usize,
        out: &mut ZoneAnswer,
    ) -> bool {
        match service.kind() {
            ServiceKind::ClusterIp { cluster_ips } | ServiceKind::Exposed { cluster_ips, .. } => {
                if qtype == RecordType::SRV {
                    self.srv(service, qname, qtype, None, out);
                } else {
                    self.addresses(qname, qtype, cluster_ips.iter().copied(), &mut out.answers);
                }
            }
            ServiceKind::Headless => {
                if qtype == RecordType::SRV {
                    self.srv(service, qname, qtype, None, out);
                } else {
                    let ips = service.endpoints.iter().map(|e| e.ip);
                    self.addresses(qname, qtype, ips, &mut out.answers);
                }
            }
            ServiceKind::ExternalName { external_name } => {
                self.external_name(snapshot, external_name, qname, qtype, depth, out);
            }
        }
        true
    }

    fn external_name(
        &self,
        snapshot: &Snapshot,
        external_name: &str,
        qname: &Name,
        qtype: RecordType,
        depth: usize,
        out: &mut ZoneAnswer,
    ) {
        let Ok(mut target) = Name::from_ascii(external_name) else {
            return;
        };
        target.set_fqdn(true);
        out.answers
            .push(self.record(qname, RData::CNAME(CNAME(target.clone()))));
        if qtype == RecordType::CNAME || depth + 1 >= MAX_CNAME_CHAIN {
            return;
        }
        // Chase within the zone; the rcode of the chain's end is the answer's rcode.
        self.answer_into(snapshot, &target, qtype, depth + 1, out);
    }

    /// A/AAAA records of `ips` for the asked type (ANY gets both families).
    fn addresses(
        &self,
        qname: &Name,
        qtype: RecordType,
        ips: impl IntoIterator<Item = IpAddr>,
        into: &mut Vec<Record>,
    ) {
        for ip in ips {
            let data = match (ip, qtype) {
                (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
                (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
                _ => continue,
            };
            into.push(self.record(qname, data));
        }
    }

    /// SRV records of the service's named ports (all, or the one `_port._proto` asks for) with
    /// the targets' addresses as additionals. Returns whether a matching port exists.
    fn srv(
        &self,
        service: &Service,
        qname: &Name,
        qtype: RecordType,
        only: Option<(&str, &str)>,
        out: &mut ZoneAnswer,
    ) -> bool {
        let ports: Vec<_> = service
            .ports
            .iter()
            .filter(|p| !p.name.is_empty())
            .filter(|p| {
                only.is_none_or(|(name, proto)| {
                    &*p.name == name && p.protocol.as_str().eq_ignore_ascii_case(proto)
                })
            })
            .collect();
        if ports.is_empty() || !matches!(qtype, RecordType::SRV | RecordType::ANY) {
            return !ports.is_empty();
        }
        let targets = self.srv_targets(service);
        for port in ports {
            for (target, _) in &targets {
                let srv = SRV::new(0, 100, port.port, target.clone());
                out.answers.push(self.record(qname, RData::SRV(srv)));
            }
        }
        for (target, ips) in &targets {
            let glue = ips.iter().copied();
            self.addresses(target, RecordType::ANY, glue, &mut out.additionals);
        }
        true
    }

    /// The SRV targets of a service: itself (ClusterIP) or each endpoint (headless).
    fn srv_targets(&self, service: &Service) -> Vec<(Name, Vec<IpAddr>)> {
        match service.kind() {
            ServiceKind::Headless => service
                .endpoints
                .iter()
                .filter_map(|e| Some((self.endpoint_name(service.key(), e)?, vec![e.ip])))
                .collect(),
            _ => self
                .service_name(service.key())
                .map(|n| vec![(n, service.cluster_ips().to_vec())])
                .unwrap_or_default(),
        }
    }

    fn record(&self, name: &Name, data: RData) -> Record {
        Record::from_rdata(name.clone(), self.ttl, data)
    }

    fn soa(&self) -> Record {
        let mname = Name::from_labels([&b"ns"[..], b"dns"])
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        let rname = Name::from_labels([&b"hostmaster"[..]])
            .and_then(|n| n.append_domain(&self.domain))
            .unwrap_or_else(|_| self.domain.clone());
        let soa = SOA::new(mname, rname, 1, 7200, 1800, 86400, self.ttl);
        Record::from_rdata(self.domain.clone(), self.ttl, RData::SOA(soa))
    }

    /// Adds the SOA to negative answers.
    fn finish(&self, mut out: ZoneAnswer) -> ZoneAnswer {
        if out.answers.is_empty() && out.chase.is_none() {
            out.authorities.push(self.soa());
        }
        out
    }
}

impl ZoneAnswer {
    fn empty() -> Self {
        Self {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            chase: None,
        }
    }
}

fn lookup<'s>(snapshot: &'s Snapshot, ns: &str, name: &str) -> Option<&'s Service> {
    snapshot
        .service(&ObjectKey::new(ns, name))
        .map(AsRef::as_ref)
}

fn namespace_exists(snapshot: &Snapshot, ns: &str) -> bool {
    snapshot
        .services
        .range(ObjectKey::new(ns, "")..)
        .next()
        .is_some_and(|(k, _)| &*k.namespace == ns)
}

fn endpoint_matches(endpoint: &Endpoint, host: &str) -> bool {
    match &endpoint.hostname {
        Some(h) => h.eq_ignore_ascii_case(host),
        None => dashed_ip(endpoint.ip) == host,
    }
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
