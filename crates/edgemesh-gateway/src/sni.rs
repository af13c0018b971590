//! The server name of a TLS ClientHello, read from the first bytes of a connection without
//! consuming them (PASSTHROUGH servers route by it and forward the bytes untouched).

/// What the bytes read so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
    /// A ClientHello that is not complete yet: read more (up to [`MAX_HELLO`]).
    NeedMore,
    /// A ClientHello with this server name (lower case).
    Name(String),
    /// A complete ClientHello without a server name.
    NoName,
    /// Not a TLS handshake, or malformed.
    NotTls,
}

/// The most bytes read while looking for a ClientHello's end.
pub const MAX_HELLO: usize = 16 * 1024;

const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
/// A record's plaintext is at most 2^14 bytes (RFC 8446 §5.1).
const MAX_RECORD: usize = 16 * 1024;
const EXTENSION_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;

/// Parses `bytes` (the connection's first bytes).
pub fn peek(bytes: &[u8]) -> Peek {
    match handshake_message(bytes) {
        Ok(hello) => match server_name(&hello) {
            Some(Some(name)) => Peek::Name(name),
            Some(None) => Peek::NoName,
            None => Peek::NotTls,
        },
        Err(Incomplete::NeedMore) if bytes.len() < MAX_HELLO => Peek::NeedMore,
        Err(_) => Peek::NotTls,
    }
}

/// Why no whole ClientHello message was found.
enum Incomplete {
    NeedMore,
    NotTls,
}

/// The ClientHello handshake message (header excluded), joined from the fragments of the
/// handshake records it spans.
fn handshake_message(mut bytes: &[u8]) -> Result<Vec<u8>, Incomplete> {
    let mut message = Vec::new();
    loop {
        let fragment = record_fragment(&mut bytes)?;
        message.extend_from_slice(fragment);
        if let Some(body) = hello_body(&message)? {
            return Ok(body.to_vec());
        }
        if bytes.is_empty() {
            return Err(Incomplete::NeedMore);
        }
    }
}

/// The fragment of the handshake record at the start of `bytes` (as much of it as has arrived),
/// advancing `bytes` past it.
fn record_fragment<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], Incomplete> {
    let header = bytes
        .get(..RECORD_HEADER.min(bytes.len()))
        .unwrap_or_default();
    if header.first().is_some_and(|&t| t != CONTENT_HANDSHAKE)
        || header.get(1).is_some_and(|&major| major != 3)
    {
        return Err(Incomplete::NotTls);
    }
    let (Some(&high), Some(&low)) = (header.get(3), header.get(4)) else {
        return Err(Incomplete::NeedMore);
    };
    let length = usize::from(u16::from_be_bytes([high, low]));
    if length == 0 || length > MAX_RECORD {
        return Err(Incomplete::NotTls);
    }
    let rest = bytes.get(RECORD_HEADER..).unwrap_or_default();
    let (fragment, after) = rest.split_at(length.min(rest.len()));
    *bytes = after;
    Ok(fragment)
}

/// The ClientHello's body once `message` holds all of it.
fn hello_body(message: &[u8]) -> Result<Option<&[u8]>, Incomplete> {
    let mut reader = Reader(message);
    let (Some(kind), Some(length)) = (reader.u8(), reader.u24()) else {
        return Ok(None);
    };
    if kind != CLIENT_HELLO {
        return Err(Incomplete::NotTls);
    }
    if HANDSHAKE_HEADER + length > MAX_HELLO {
        return Err(Incomplete::NotTls);
    }
    Ok(reader.take(length))
}

/// `Some(name)` of a well-formed ClientHello body, `None` when it is malformed.
fn server_name(hello: &[u8]) -> Option<Option<String>> {
    let mut reader = Reader(hello);
    reader.take(2 + 32)?; // legacy_version, random
    reader.vec8()?; // legacy_session_id
    let suites = reader.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return None;
    }
    reader.vec8()?; // legacy_compression_methods
    if reader.0.is_empty() {
        // A hello without extensions (TLS 1.2 allows it).
        return Some(None);
    }
    let mut extensions = Reader(reader.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind == EXTENSION_SERVER_NAME {
            return host_name(data).map(Some);
        }
    }
    Some(None)
}

/// The host_name of a server_name extension's data.
fn host_name(data: &[u8]) -> Option<String> {
    let mut list = Reader(Reader(data).vec16()?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == NAME_TYPE_HOST {
            let valid = !name.is_empty() && name.iter().all(u8::is_ascii_graphic);
            return valid.then(|| String::from_utf8_lossy(name).to_ascii_lowercase());
        }
    }
    None
}

/// Big-endian reads that return `None` past the end instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(
            (usize::from(*b.first()?) << 16)
                | (usize::from(*b.get(1)?) << 8)
                | usize::from(*b.get(2)?),
        )
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use proptest::prelude::*;
    use rustls::pki_types::ServerName;

    use super::*;

    /// The first flight a rustls client writes: its ClientHello record(s).
    fn client_hello(name: &str, sni: bool) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.enable_sni = sni;
        let name = ServerName::try_from(name.to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn reads_the_name_of_a_rustls_hello() {
        let hello = client_hello("Shop.Example.COM", true);
        assert_eq!(peek(&hello), Peek::Name("shop.example.com".into()));
        // Bytes after the hello (early data, the next flight) do not matter.
        let mut more = hello.clone();
        more.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
        assert_eq!(peek(&more), Peek::Name("shop.example.com".into()));
    }

    #[test]
    fn a_hello_without_sni_has_no_name() {
        assert_eq!(peek(&client_hello("shop.example.com", false)), Peek::NoName);
    }

    #[test]
    fn every_truncation_needs_more() {
        let hello = client_hello("shop.example.com", true);
        for end in 0..hello.len() {
            assert_eq!(peek(&hello[..end]), Peek::NeedMore, "first {end} bytes");
        }
    }

    /// The hello's handshake message cut into records of `size` bytes each.
    fn fragmented(hello: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in hello[RECORD_HEADER..].chunks(size) {
            out.extend_from_slice(&hello[..3]);
            out.extend_from_slice(&u16::try_from(chunk.len()).unwrap().to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn a_hello_spanning_records_is_read() {
        let hello = fragmented(&client_hello("shop.example.com", true), 50);
        assert_eq!(peek(&hello), Peek::Name("shop.example.com".into()));
        assert_eq!(peek(&hello[..hello.len() - 1]), Peek::NeedMore);
        assert_eq!(peek(&hello[..60]), Peek::NeedMore);
    }

    #[test]
    fn other_protocols_are_not_tls() {
        assert_eq!(peek(b"GET / HTTP/1.1\r\n"), Peek::NotTls);
        assert_eq!(peek(b"SSH-2.0-OpenSSH_9.6\r\n"), Peek::NotTls);
        // A handshake record whose message is no ClientHello.
        assert_eq!(peek(&[22, 3, 1, 0, 4, 2, 0, 0, 0]), Peek::NotTls);
        // A record over the 2^14 byte limit.
        assert_eq!(peek(&[22, 3, 1, 0x48, 0x01]), Peek::NotTls);
        // A hello announced longer than MAX_HELLO.
        assert_eq!(
            peek(&[22, 3, 1, 0x40, 0x00, 1, 0, 0x40, 0x00]),
            Peek::NotTls
        );
    }

    #[test]
    fn a_malformed_hello_is_not_tls() {
        let mut hello = client_hello("shop.example.com", true);
        // The session id's length byte: claim more than the hello holds.
        let session_id = RECORD_HEADER + HANDSHAKE_HEADER + 2 + 32;
        hello[session_id] = 0xff;
        assert_eq!(peek(&hello), Peek::NotTls);
    }

    #[test]
    fn more_than_max_hello_unfinished_bytes_are_not_tls() {
        // A 16000 byte hello in one-byte records: it cannot end within MAX_HELLO bytes.
        let mut hello = vec![22, 3, 1, 0, 0, 1, 0, 0x3e, 0x80];
        hello.resize(16000 + 9, 0);
        let records = fragmented(&hello, 1);
        assert_eq!(peek(&records[..MAX_HELLO - 1]), Peek::NeedMore);
        assert_eq!(peek(&records[..MAX_HELLO]), Peek::NotTls);
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = peek(&bytes);
        }

        #[test]
        fn never_panics_on_a_damaged_hello(
            end in 0usize..400,
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..4),
        ) {
            let mut hello = client_hello("shop.example.com", true);
            for (at, byte) in flips {
                if let Some(slot) = hello.get_mut(at) {
                    *slot = byte;
                }
            }
            hello.truncate(end);
            let _ = peek(&hello);
        }
    }
}
