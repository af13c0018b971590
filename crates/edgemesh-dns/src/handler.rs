//! The hickory `RequestHandler`: checks the request, answers cluster names from the Snapshot,
//! forwards the rest through the cache, and writes the response (echoing EDNS).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use edgemesh_model::SnapshotCell;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::DNSClass;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::debug;

use crate::clients;
use crate::config::ClientPolicy;
use crate::metrics::DnsMetrics;
use crate::reply::Reply;
use crate::resolve::Resolver;

/// Requests this long or longer are refused with FORMERR (a query is a few dozen bytes; this
/// leaves room for EDNS options). It is also hickory's UDP receive buffer size.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// The EDNS UDP payload size we advertise to clients.
pub const CLIENT_UDP_PAYLOAD: u16 = 1232;

/// The request handler registered with hickory's `Server`; cheap to clone.
#[derive(Clone, Debug)]
pub struct DnsHandler {
    resolver: Arc<Resolver>,
    clients: Arc<ClientPolicy>,
    /// The server's own addresses: the node's queries to them come from them.
    listen: Arc<[IpAddr]>,
    local_nets: Arc<clients::LocalNets>,
}

impl DnsHandler {
    /// A handler that answers every client (tests, fuzzing); see [`DnsHandler::for_clients`].
    pub fn new(resolver: Resolver) -> Self {
        Self {
            resolver: Arc::new(resolver),
            clients: Arc::default(),
            listen: Arc::from([]),
            local_nets: Arc::default(),
        }
    }

    /// Answers only the clients `policy` allows, for a server listening on `listen`.
    pub fn for_clients(mut self, policy: ClientPolicy, listen: &[SocketAddr]) -> Self {
        self.clients = Arc::new(policy);
        self.listen = listen.iter().map(SocketAddr::ip).collect();
        self
    }

    pub fn metrics(&self) -> &Arc<DnsMetrics> {
        self.resolver.metrics()
    }

    pub fn snapshots(&self) -> &Arc<SnapshotCell> {
        self.resolver.snapshots()
    }

    /// The reply to a parsed request, before encoding.
    pub async fn reply(&self, request: &Request) -> Reply {
        let snapshot = self.resolver.snapshots().load();
        let local_nets = self.local_nets.get();
        let source = request.src().ip();
        if !clients::allowed(&self.clients, &snapshot, &self.listen, &local_nets, source) {
            debug!(src = %request.src(), "refused: a client on the node's LAN, not the node or its pods");
            return Reply::error(ResponseCode::Refused);
        }
        match checked_query(request) {
            Ok(query) => {
                let rd = request.metadata.recursion_desired;
                self.resolver.resolve(query, rd).await
            }
            Err(code) => Reply::error(code),
        }
    }
}

/// The one question of a request we are willing to answer, or the error code to answer with.
fn checked_query(request: &Request) -> Result<&Query, ResponseCode> {
    // A UDP datagram is read into a buffer of this size: one that fills it was cut short.
    if request.as_slice().len() >= MAX_REQUEST_BYTES {
        return Err(ResponseCode::FormErr);
    }
    if request.metadata.op_code != OpCode::Query {
        return Err(ResponseCode::NotImp);
    }
    let [query] = request.queries.queries() else {
        return Err(ResponseCode::FormErr);
    };
    if query.query_class() != DNSClass::IN {
        return Err(ResponseCode::NotImp);
    }
    Ok(query.original())
}

/// The largest answer a UDP client takes: its EDNS payload size (at least 512, at most what we
/// advertise), or 512 without EDNS (RFC 1035). `None` over TCP.
fn udp_limit(request: &Request) -> Option<usize> {
    (request.protocol() == Protocol::Udp).then(|| {
        request.edns.as_ref().map_or(512, |e| {
            usize::from(e.max_payload().clamp(512, CLIENT_UDP_PAYLOAD))
        })
    })
}

/// Makes `reply` fit in `limit` bytes by dropping whole records — additionals and authorities,
/// then answers from the end — and says whether it had to (the answer then carries TC and the
/// client asks again over TCP). hickory's encoder, left to it, cuts the record that does not fit
/// and sends that record's bytes after the message end.
fn fit(reply: &mut Reply, request: &Request, edns: Option<&Edns>, limit: usize) -> bool {
    if encoded_len(reply, request, edns) <= limit {
        return false;
    }
    reply.additionals.clear();
    reply.authorities.clear();
    // The most answers that fit: binary search over how many are kept.
    let all = std::mem::take(&mut reply.answers);
    let (mut fits, mut too_many) = (0, all.len() + 1);
    while too_many - fits > 1 {
        let middle = (fits + too_many) / 2;
        reply.answers = all[..middle].to_vec();
        if encoded_len(reply, request, edns) <= limit {
            fits = middle;
        } else {
            too_many = middle;
        }
    }
    reply.answers = all[..fits].to_vec();
    true
}

/// The size of the response encoded exactly as hickory's server will encode it.
fn encoded_len(reply: &Reply, request: &Request, edns: Option<&Edns>) -> usize {
    let mut builder = MessageResponseBuilder::new(&request.queries, None);
    if let Some(edns) = edns {
        builder.edns(edns);
    }
    let response = builder.build(
        Metadata::response_from_request(&request.metadata),
        reply.answers.iter(),
        reply.authorities.iter(),
        std::iter::empty(),
        reply.additionals.iter(),
    );
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    match response.destructive_emit(&mut encoder) {
        Ok(_) => bytes.len(),
        Err(_) => usize::MAX,
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = Instant::now();
        let metrics = self.resolver.metrics();
        metrics.query();
        let mut reply = self.reply(request).await;
        // RFC 6891: a request with OPT gets an OPT back; hickory leaves that to the handler.
        let edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(CLIENT_UDP_PAYLOAD);
            edns
        });
        let truncated =
            udp_limit(request).is_some_and(|limit| fit(&mut reply, request, edns.as_ref(), limit));
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.rcode;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        metadata.truncation = truncated;
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        let sent = response_handle.send_response(response).await;
        metrics.request_duration.observe(started.elapsed());
        match sent {
            Ok(info) => {
                metrics.rcode(info.response_code);
                info
            }
            Err(error) => {
                debug!(%error, src = %request.src(), "cannot send DNS response");
                metrics.rcode(ResponseCode::ServFail);
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
