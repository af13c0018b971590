//! EdgeMesh's wire format: protocol ids, and proto2 messages each preceded by an unsigned varint
//! length (go-msgio `protoio` delimited framing), at most [`MAX_MESSAGE`] bytes.

use std::io;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::StreamProtocol;

/// The proxy protocol: one CONNECT, one SUCCESS/FAILED answer, then raw bytes.
pub const PROXY_PROTOCOL: StreamProtocol = StreamProtocol::new("/libp2p/tunnel-proxy/1.0.0");
/// The discovery handshake: each side tells the other its node name.
pub const DISCOVERY_PROTOCOL: StreamProtocol =
    StreamProtocol::new("/libp2p/tunnel-discovery/1.0.0");
/// Largest message EdgeMesh reads (`MaxReadSize`).
pub const MAX_MESSAGE: usize = 4096;

/// `Proxy.Type` / `Discovery.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum MsgType {
    Connect = 0,
    Success = 1,
    Failed = 2,
}

/// Declares one of EdgeMesh's two proto2 messages: the three fields both open with (tags 1-3,
/// the same in `proxy.proto` and `discovery.proto`), then the message's own fields, and its
/// `kind()`. A macro because prost cannot flatten a shared struct into a message without
/// nesting it, which would change the wire format.
macro_rules! edgemesh_message {
    ($(#[$doc:meta])* $name:ident { $($own:tt)* }) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct $name {
            #[prost(enumeration = "MsgType", optional, tag = "1")]
            pub r#type: Option<i32>,
            /// `Proxy`: `tcp` or `udp`. `Discovery`: EdgeMesh's "MDNS" or "DHT"; edgemesh also
            /// sends [`LOOKUP`] to ask a relay for a node.
            #[prost(string, optional, tag = "2")]
            pub protocol: Option<String>,
            #[prost(string, optional, tag = "3")]
            pub node_name: Option<String>,
            $($own)*
        }

        impl $name {
            pub fn kind(&self) -> Option<MsgType> {
                MsgType::try_from(self.r#type.unwrap_or(0)).ok()
            }
        }
    };
}

edgemesh_message! {
    /// `proxy.Proxy` (proto2), plus one extension field EdgeMesh ignores as unknown.
    Proxy {
        #[prost(string, optional, tag = "4")]
        pub ip: Option<String>,
        #[prost(int32, optional, tag = "5")]
        pub port: Option<i32>,
        /// Extension: in a FAILED answer, why the node did not dial (its dial error, or the
        /// policy refusal). EdgeMesh's Go agents neither send nor read it (proto2 skips unknown
        /// fields).
        #[prost(string, optional, tag = "100")]
        pub reason: Option<String>,
    }
}

/// Longest [`Proxy::reason`] sent: the whole answer stays far below [`MAX_MESSAGE`].
pub const MAX_REASON: usize = 512;

edgemesh_message! {
    /// `discovery.Discovery` (proto2), plus one extension field EdgeMesh ignores as unknown.
    Discovery {
        /// Extension: in a LOOKUP answer, the peer id (bytes) of the node asked for.
        #[prost(bytes = "vec", optional, tag = "100")]
        pub peer_id: Option<Vec<u8>>,
    }
}

/// `Discovery.protocol` of a name lookup sent to a relay.
pub const LOOKUP: &str = "LOOKUP";

impl Proxy {
    pub fn answer(kind: MsgType) -> Proxy {
        Proxy {
            r#type: Some(kind as i32),
            ..Proxy::default()
        }
    }

    /// A FAILED answer saying why (cut to [`MAX_REASON`] bytes, at a character boundary).
    pub fn failed(reason: &str) -> Proxy {
        let mut end = reason.len().min(MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Proxy {
            reason: Some(reason[..end].to_owned()),
            ..Proxy::answer(MsgType::Failed)
        }
    }
}

/// Writes one length-delimited message.
pub async fn write_msg<W, M>(w: &mut W, msg: &M) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    M: prost::Message,
{
    let buf = msg.encode_length_delimited_to_vec();
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one length-delimited message of at most [`MAX_MESSAGE`] bytes.
pub async fn read_msg<R, M>(r: &mut R) -> io::Result<M>
where
    R: AsyncRead + Unpin,
    M: prost::Message + Default,
{
    read_msg_limited(r, MAX_MESSAGE).await
}

/// Reads one length-delimited message of at most `max` bytes (edgemesh's own protocols, whose
/// messages may be larger than EdgeMesh's limit).
pub async fn read_msg_limited<R, M>(r: &mut R, max: usize) -> io::Result<M>
where
    R: AsyncRead + Unpin,
    M: prost::Message + Default,
{
    let len = read_varint(r).await?;
    if len > max as u64 {
        return Err(invalid(format!(
            "message of {len} bytes exceeds the {max}-byte limit"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    M::decode(buf.as_slice()).map_err(|e| invalid(format!("undecodable message: {e}")))
}

async fn read_varint<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let mut byte = [0u8; 1];
        r.read_exact(&mut byte).await?;
        value |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(invalid("length varint longer than 10 bytes".into()))
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use proptest::prelude::*;
    use prost::Message as _;

    /// Bytes a Go agent sends for CONNECT{tcp, node1, 10.0.0.1, 80}, encoded by hand from the
    /// proto2 rules (field 1 varint 0, fields 2-4 strings, field 5 varint).
    #[test]
    fn connect_matches_edgemesh_bytes() {
        let msg = Proxy {
            r#type: Some(0),
            protocol: Some("tcp".into()),
            node_name: Some("node1".into()),
            ip: Some("10.0.0.1".into()),
            port: Some(80),
            reason: None,
        };
        let mut want = vec![0x08, 0x00, 0x12, 0x03];
        want.extend(b"tcp");
        want.extend([0x1a, 0x05]);
        want.extend(b"node1");
        want.extend([0x22, 0x08]);
        want.extend(b"10.0.0.1");
        want.extend([0x28, 0x50]);
        let mut framed = vec![want.len() as u8];
        framed.extend(&want);
        assert_eq!(msg.encode_length_delimited_to_vec(), framed);
    }

    /// A FAILED answer with a reason, as a Go agent reads it: field 1 = 2, then field 100 (tag
    /// bytes 0xa2 0x06, length-delimited), which proto2 decoders skip as unknown.
    #[test]
    fn a_reason_is_an_extension_field_after_edgemesh_fields() {
        let bytes = Proxy::failed("refused").encode_to_vec();
        let mut want = vec![0x08, 0x02, 0xa2, 0x06, 0x07];
        want.extend(b"refused");
        assert_eq!(bytes, want);
        // And an answer without it (a Go agent's) decodes with no reason.
        let go = Proxy::decode(&[0x08u8, 0x02][..]).unwrap();
        assert_eq!((go.kind(), go.reason), (Some(MsgType::Failed), None));
    }

    #[test]
    fn a_long_reason_is_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_REASON);
        let reason = Proxy::failed(&long).reason.unwrap();
        assert!(reason.len() <= MAX_REASON && reason.len() >= MAX_REASON - 1);
        assert!(Proxy::failed(&long).encode_length_delimited_to_vec().len() <= MAX_MESSAGE);
    }

    #[test]
    fn an_oversized_length_is_refused_before_allocating() {
        let bytes = [0xff, 0xff, 0x03];
        let err = block_on(read_msg::<_, Proxy>(&mut &bytes[..])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_truncated_message_is_an_error() {
        let bytes = [0x05, 0x08];
        assert!(block_on(read_msg::<_, Proxy>(&mut &bytes[..])).is_err());
    }

    proptest! {
        #[test]
        fn proxy_round_trips(kind in 0i32..3, proto in "[a-z]{0,8}", node in ".{0,40}", ip in "[0-9.]{0,15}", port in any::<i32>()) {
            let msg = Proxy { r#type: Some(kind), protocol: Some(proto), node_name: Some(node), ip: Some(ip), port: Some(port), reason: None };
            let mut buf = Vec::new();
            block_on(write_msg(&mut buf, &msg)).unwrap();
            let back: Proxy = block_on(read_msg(&mut buf.as_slice())).unwrap();
            prop_assert_eq!(back, msg);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = block_on(read_msg::<_, Proxy>(&mut bytes.as_slice()));
            let _ = block_on(read_msg::<_, Discovery>(&mut bytes.as_slice()));
        }
    }
}
