//! The server name of a TLS ClientHello, read from the first bytes of a connection without
//! consuming them (PASSTHROUGH servers route by it and forward the bytes untouched).
//!
//! STUB: the interface the rest of the crate codes against; being implemented.

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

/// Parses `bytes` (the connection's first bytes).
pub fn peek(bytes: &[u8]) -> Peek {
    let _ = bytes;
    Peek::NotTls
}
