//! Just enough WebSocket (RFC 6455) for an echo pod and a check client: the opening handshake,
//! and single-frame text, ping/pong and close messages. Fragmented messages are not supported.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::servers::{IDLE, read_head};

/// The GUID of RFC 6455 section 1.3.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Largest frame payload accepted.
const MAX_PAYLOAD: u64 = 1 << 20;

pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{}{GUID}", key.trim()).as_bytes(),
    );
    STANDARD.encode(digest.as_ref())
}

/// A final frame; masked with `mask` (clients must mask, servers must not).
pub fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Reads one frame, unmasking it. Errors on fragments and on payloads over 1 MiB.
pub fn read_frame(reader: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head)?;
    if head[0] & 0x80 == 0 {
        return Err(io::Error::other(
            "fragmented WebSocket messages are not supported",
        ));
    }
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            reader.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            reader.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    if len > MAX_PAYLOAD {
        return Err(io::Error::other(format!(
            "WebSocket frame of {len} bytes is too large"
        )));
    }
    let mut key = [0u8; 4];
    let masked = head[1] & 0x80 != 0;
    if masked {
        reader.read_exact(&mut key)?;
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload)?;
    if masked {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i % 4]);
    }
    Ok(Frame {
        opcode: head[0] & 0x0F,
        payload,
    })
}

/// The value of header `name` (case-insensitive) in a request or response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Serves one WebSocket client: each text or binary message comes back as `NAME:message`.
pub(super) fn serve(mut stream: TcpStream, name: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let head = read_head(&mut stream)?;
    let Some(key) = header(&head, "sec-websocket-key") else {
        let refusal = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 24\r\n\r\nWebSocket upgrade only.\n";
        return stream.write_all(refusal.as_bytes());
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    stream.write_all(response.as_bytes())?;
    loop {
        let frame = read_frame(&mut stream)?;
        let reply = match frame.opcode {
            OP_TEXT | OP_BINARY => {
                let text = format!("{name}:{}", String::from_utf8_lossy(&frame.payload));
                encode(OP_TEXT, text.as_bytes(), None)
            }
            OP_PING => encode(OP_PONG, &frame.payload, None),
            OP_CLOSE => return stream.write_all(&encode(OP_CLOSE, &frame.payload, None)),
            _ => continue,
        };
        stream.write_all(&reply)?;
    }
}

/// Client side: handshake on `stream` for `host`, send `message`, return the reply's text.
pub fn client_round_trip(
    stream: &mut TcpStream,
    host: &str,
    message: &str,
) -> Result<String, String> {
    let key = STANDARD.encode(rand_key());
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send handshake: {e}"))?;
    let head = read_head(stream).map_err(|e| format!("handshake answer: {e}"))?;
    if !head.starts_with("HTTP/1.1 101") {
        let line = head.lines().next().unwrap_or_default();
        return Err(format!("no upgrade: {line:?}"));
    }
    if header(&head, "sec-websocket-accept") != Some(accept_key(&key).as_str()) {
        return Err("wrong Sec-WebSocket-Accept".into());
    }
    let mask = [0x1f, 0x2e, 0x3d, 0x4c];
    stream
        .write_all(&encode(OP_TEXT, message.as_bytes(), Some(mask)))
        .map_err(|e| format!("send message: {e}"))?;
    let frame = read_frame(stream).map_err(|e| format!("read reply: {e}"))?;
    // A polite close; the answer is already in hand.
    let _ = stream.write_all(&encode(OP_CLOSE, &[], Some(mask)));
    Ok(String::from_utf8_lossy(&frame.payload).into_owned())
}

/// 16 bytes of nonce: not security relevant, only different per connection.
fn rand_key() -> [u8; 16] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    nanos.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_round_trip_at_every_length_boundary() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let bytes = encode(OP_TEXT, &payload, mask);
                let frame = read_frame(&mut bytes.as_slice()).unwrap();
                assert_eq!(
                    frame,
                    Frame {
                        opcode: OP_TEXT,
                        payload: payload.clone()
                    },
                    "{len}"
                );
            }
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let cases: [&[u8]; 4] = [
            &[0x01, 0x00],                            // not final: a fragment
            &[0x81, 0x7F, 0, 0, 0, 0, 0, 0x20, 0, 0], // 2 MiB
            &[0x81, 0x05, b'a'],                      // truncated
            &[],
        ];
        for bytes in cases {
            assert!(read_frame(&mut &bytes[..]).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn headers_are_found_case_insensitively() {
        let head = "HTTP/1.1 101 x\r\nsec-websocket-ACCEPT:  abc \r\n\r\n";
        assert_eq!(header(head, "Sec-WebSocket-Accept"), Some("abc"));
        assert_eq!(header(head, "Upgrade"), None);
    }
}
