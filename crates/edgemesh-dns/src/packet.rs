//! Raw bytes in, raw bytes out: the same parse → [`DnsHandler`] path the server runs, without
//! sockets. Used by the fuzz target, the property test and the malformed-packet tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Header, Message, MessageType};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;

use crate::handler::DnsHandler;
use crate::metrics::DnsMetrics;

/// Handles one datagram (or one TCP message) as the server would: `None` means the packet is
/// dropped without an answer (shorter than a header, or itself a response).
pub async fn handle_packet(
    handler: &DnsHandler,
    raw: &[u8],
    src: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(raw)).ok()?;
    let request = match Request::from_bytes(raw.to_vec(), src, protocol) {
        Ok(request) => request,
        Err(_) => return form_error(handler.metrics(), &header),
    };
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let capture = Capture {
        protocol,
        bytes: Arc::new(Mutex::new(None)),
    };
    handler
        .handle_request::<_, TokioTime>(&request, capture.clone())
        .await;
    capture.bytes.lock().ok()?.take()
}

/// What hickory's server sends when the header parses but the rest does not.
fn form_error(metrics: &DnsMetrics, header: &Header) -> Option<Vec<u8>> {
    if header.metadata.message_type == MessageType::Response {
        return None;
    }
    metrics.query();
    metrics.rcode(hickory_proto::op::ResponseCode::FormErr);
    let message = Message::error_msg(
        header.metadata.id,
        header.metadata.op_code,
        hickory_proto::op::ResponseCode::FormErr,
    );
    message.to_vec().ok()
}

/// A response handler that keeps the encoded bytes instead of sending them.
#[derive(Clone)]
struct Capture {
    protocol: Protocol,
    bytes: Arc<Mutex<Option<Vec<u8>>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // The same size limit hickory's own handle applies: the client's EDNS size over UDP.
        let max_size = match (self.protocol, response.edns()) {
            (Protocol::Udp, Some(edns)) => edns.max_payload(),
            (Protocol::Udp, None) => 512,
            _ => u16::MAX,
        };
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max_size);
        let info = response.destructive_emit(&mut encoder)?;
        if let Ok(mut slot) = self.bytes.lock() {
            *slot = Some(bytes);
        }
        Ok(info)
    }
}
