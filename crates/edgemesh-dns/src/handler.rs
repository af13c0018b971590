//! The hickory `RequestHandler`: checks the request, answers cluster names from the Snapshot,
//! forwards the rest through the cache, and writes the response (echoing EDNS).

use std::sync::Arc;

use edgemesh_model::SnapshotCell;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Record};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::debug;

use crate::metrics::DnsMetrics;
use crate::resolve::Resolver;

/// Largest request we look at (a query is a few dozen bytes; this leaves room for EDNS options).
pub const MAX_REQUEST_BYTES: usize = 4096;
/// The EDNS UDP payload size we advertise to clients.
pub const CLIENT_UDP_PAYLOAD: u16 = 1232;

/// What goes into one response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Reply {
    pub fn error(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            ..Self::default()
        }
    }
}

/// The request handler registered with hickory's `Server`; cheap to clone.
#[derive(Clone, Debug)]
pub struct DnsHandler {
    resolver: Arc<Resolver>,
}

impl DnsHandler {
    pub fn new(resolver: Resolver) -> Self {
        Self {
            resolver: Arc::new(resolver),
        }
    }

    pub fn metrics(&self) -> &Arc<DnsMetrics> {
        self.resolver.metrics()
    }

    pub fn snapshots(&self) -> &Arc<SnapshotCell> {
        self.resolver.snapshots()
    }

    /// The reply to a parsed request, before encoding.
    pub async fn reply(&self, request: &Request) -> Reply {
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
    if request.as_slice().len() > MAX_REQUEST_BYTES {
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

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let metrics = self.resolver.metrics();
        metrics.query();
        let reply = self.reply(request).await;
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.rcode;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        // RFC 6891: a request with OPT gets an OPT back; hickory leaves that to the handler.
        let edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(CLIENT_UDP_PAYLOAD);
            edns
        });
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
        match response_handle.send_response(response).await {
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
