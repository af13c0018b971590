//! What goes into one DNS response: made by the resolver, encoded by the handler.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Record;

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
