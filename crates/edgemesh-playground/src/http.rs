//! A tiny blocking HTTP/1.1 client: one request per connection (`Connection: close`), enough
//! for the agents' admin endpoint and the hostname pods.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response read (the admin snapshot of the playground is a few KiB).
const MAX_RESPONSE: u64 = 4 << 20;

/// `GET path` on `addr` with `Host: host` and extra headers; returns (status, body).
pub(crate) fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, String), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_response(&raw).ok_or_else(|| {
        let text = String::from_utf8_lossy(&raw);
        format!(
            "{addr}: not an HTTP response: {:?}",
            text.chars().take(80).collect::<String>()
        )
    })
}

/// Status and body of a whole `Connection: close` response (no chunked encoding).
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_parsed_or_rejected() {
        type Case<'a> = (&'a [u8], Option<(u16, &'a str)>);
        let cases: [Case; 5] = [
            (
                b"HTTP/1.1 200 OK\r\nA: b\r\n\r\npod-a\n",
                Some((200, "pod-a\n")),
            ),
            (b"HTTP/1.0 503 No\r\n\r\n", Some((503, ""))),
            (b"HTTP/1.1 200 OK\r\n", None),
            (b"SSH-2.0\r\n\r\n", None),
            (b"", None),
        ];
        for (raw, want) in cases {
            let got = parse_response(raw);
            assert_eq!(got.as_ref().map(|(s, b)| (*s, b.as_str())), want);
        }
    }
}
