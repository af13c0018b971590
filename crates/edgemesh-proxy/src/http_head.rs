//! Reading just enough of an HTTP/1 request to balance it on a header: bounded in bytes and
//! time, and forgiving: anything odd means "no header", so the balancer hashes the source IP.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::HttpHeadLimits;

/// Headers parsed at most; a request with more falls back to source-IP hashing.
const MAX_HEADERS: usize = 64;

/// Outcome of parsing the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadParse<'b> {
    /// The whole head arrived; the header's value if present and valid UTF-8.
    Complete(Option<&'b str>),
    /// More bytes are needed.
    Partial,
    /// Not HTTP/1 (or too many headers): stop reading.
    Invalid,
}

/// Finds header `name` (case-insensitive) in a request head.
pub fn header_value<'b>(head: &'b [u8], name: &str) -> HeadParse<'b> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {
            let value = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::trim);
            HeadParse::Complete(value)
        }
        Ok(httparse::Status::Partial) => HeadParse::Partial,
        Err(_) => HeadParse::Invalid,
    }
}

/// The bytes consumed from the client (to be forwarded first) and the header value, if found.
#[derive(Debug, Default)]
pub struct Head {
    pub bytes: Vec<u8>,
    pub value: Option<String>,
}

/// Reads the request head from `client`, never more than `limits.max_bytes` and never longer
/// than `limits.timeout`. Read errors end the sniffing too; the relay will meet them again.
pub async fn read_head(client: &mut TcpStream, name: &str, limits: HttpHeadLimits) -> Head {
    let mut head = Head::default();
    let sniff = sniff(client, name, limits.max_bytes, &mut head);
    let _timed_out = tokio::time::timeout(limits.timeout, sniff).await;
    head
}

async fn sniff(client: &mut TcpStream, name: &str, max_bytes: usize, head: &mut Head) {
    let mut chunk = vec![0u8; max_bytes.min(4096)];
    while head.bytes.len() < max_bytes {
        let room = (max_bytes - head.bytes.len()).min(chunk.len());
        match client.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.bytes.extend_from_slice(&chunk[..n]),
        }
        match header_value(&head.bytes, name) {
            HeadParse::Complete(value) => {
                head.value = value.map(str::to_owned);
                return;
            }
            HeadParse::Invalid => return,
            HeadParse::Partial => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_found_or_reported() {
        use HeadParse::*;
        let table: &[(&[u8], &str, HeadParse)] = &[
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX-User: bob\r\n\r\n",
                "x-user",
                Complete(Some("bob")),
            ),
            (
                b"GET / HTTP/1.1\r\nx-user:  bob  \r\n\r\nbody",
                "X-USER",
                Complete(Some("bob")),
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                "x-user",
                Complete(None),
            ),
            (
                b"POST /x HTTP/1.0\r\nX-User: \r\n\r\n",
                "x-user",
                Complete(Some("")),
            ),
            (
                b"GET / HTTP/1.1\r\nX-User: b\xffb\r\n\r\n",
                "x-user",
                Complete(None),
            ),
            (b"GET / HTTP/1.1\r\nX-User: bob\r\n", "x-user", Partial),
            (b"GET / HT", "x-user", Partial),
            (b"", "x-user", Partial),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                "x-user",
                Invalid,
            ),
            // h2c prior knowledge is not HTTP/1: source-IP hashing.
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "x-user", Invalid),
            (
                b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
                "x-user",
                Invalid,
            ),
        ];
        for (head, name, want) in table {
            assert_eq!(&header_value(head, name), want, "{}", head.escape_ascii());
        }
    }

    #[test]
    fn too_many_headers_is_invalid_not_a_crash() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..(MAX_HEADERS + 1) {
            head.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(header_value(&head, "x-user"), HeadParse::Invalid);
    }
}
