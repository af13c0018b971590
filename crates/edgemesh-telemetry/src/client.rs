//! The client side of the admin endpoint: a tiny blocking HTTP/1.1 GET, one request per
//! connection (`Connection: close`), every step under one timeout. `edgemesh doctor` reads the
//! agent's and the hub's admin endpoints with it, the playground its agents and pods.
//!
//! Its socket is a plain blocking `std::net::TcpStream`, not one from `edgemesh-host`'s
//! `SocketFactory`: the callers are command-line tools with no tokio runtime (the factory's
//! sockets are tokio sockets registered with one), and a GET to an admin endpoint needs none of
//! the options the seam exists to set (bypass mark, transparent).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response read (a big cluster's snapshot is a few MiB).
const MAX_RESPONSE: u64 = 64 << 20;

/// Why a GET has no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    #[error("connect {addr}: {error}")]
    Connect { addr: SocketAddr, error: io::Error },
    #[error("{addr}: {error}")]
    Timeout { addr: SocketAddr, error: io::Error },
    #[error("send to {addr}: {error}")]
    Send { addr: SocketAddr, error: io::Error },
    #[error("read from {addr}{path}: {error}")]
    Read {
        addr: SocketAddr,
        path: String,
        error: io::Error,
    },
    #[error("{addr}{path}: not an HTTP response: {start:?}")]
    NotHttp {
        addr: SocketAddr,
        path: String,
        start: String,
    },
}

/// `GET path` on `addr` (`Host: addr`): (status, body).
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), GetError> {
    get_with(addr, &addr.to_string(), path, &[], timeout)
}

/// `GET path` on `addr` with `Host: host` and extra headers: (status, body).
pub fn get_with(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, String), GetError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|error| GetError::Connect { addr, error })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|error| GetError::Timeout { addr, error })?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|error| GetError::Send { addr, error })?;
    let mut raw = Vec::new();
    let path = path.to_owned();
    match stream.take(MAX_RESPONSE).read_to_end(&mut raw) {
        Ok(_) => parse_response(&raw).ok_or_else(|| GetError::NotHttp {
            addr,
            path,
            start: String::from_utf8_lossy(&raw).chars().take(80).collect(),
        }),
        Err(error) => Err(GetError::Read { addr, path, error }),
    }
}

/// Status and body of a whole `Connection: close` response (chunked bodies are joined).
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let mut parts = lines.next()?.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = match chunked {
        true => dechunk(body)?,
        false => body.to_owned(),
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_parsed_or_rejected() {
        type Case<'a> = (&'a [u8], Option<(u16, &'a str)>);
        let cases: [Case; 7] = [
            (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nok\n", Some((200, "ok\n"))),
            (b"HTTP/1.0 503 No\r\n\r\n", Some((503, ""))),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                Some((200, "abcde")),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                None,
            ),
            (b"HTTP/1.1 200 OK\r\n", None),
            (b"SSH-2.0\r\n\r\n", None),
            (b"", None),
        ];
        for (raw, want) in cases {
            let got = parse_response(raw);
            assert_eq!(got.as_ref().map(|(s, b)| (*s, b.as_str())), want);
        }
    }

    #[test]
    fn nobody_listening_is_an_error_naming_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = get(addr, "/healthz", Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
