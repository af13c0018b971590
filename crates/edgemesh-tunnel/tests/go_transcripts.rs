//! Replays bytes recorded from EdgeMesh's Go agent (`tests/fixtures/go-agent/`, how they were
//! made: its README) against this crate, so CI checks the wire compatibility without Go:
//!
//! - a PSK file gives the key the Go agents derive from it;
//! - rust-libp2p's pnet, keyed the way we key it, decrypts what a Go agent sent on a real
//!   connection to the multistream-select header;
//! - the keys Go derives from node names load as our node keys and give Go's peer ids;
//! - `/libp2p/tunnel-proxy/1.0.0` and `/libp2p/tunnel-discovery/1.0.0` frames: our decoder reads
//!   Go's bytes (and stops at the frame's end, leaving the spliced bytes after it), our encoder
//!   writes Go's bytes for the same fields.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use edgemesh_tunnel::policy::WireProtocol;
use edgemesh_tunnel::psk::{psk_bytes, read_psk_file};
use edgemesh_tunnel::wire::{self, Discovery, MsgType, Proxy};
use futures::executor::block_on;
use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use serde::Deserialize;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go-agent")
        .join(name)
}

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- PSK -------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct PskCase {
    file_hex: String,
    key_hex: String,
}

#[test]
fn psk_files_give_the_go_agents_key() {
    let cases: Vec<PskCase> = fixture("psk.json");
    assert!(cases.len() >= 3);
    for case in cases {
        let file = unhex(&case.file_hex);
        assert_eq!(hex(&psk_bytes(&file)), case.key_hex, "PSK file {file:?}");
        // The same through the file reader the agent uses.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("psk");
        std::fs::write(&path, &file).unwrap();
        assert_eq!(hex(&read_psk_file(&path).unwrap()), case.key_hex);
    }
}

// ---- pnet --------------------------------------------------------------------------------------

/// Bytes one side of a connection sent, as recorded, and the PSK file of that mesh.
#[derive(Deserialize)]
struct PnetTranscript {
    /// What this transcript is (shown when it fails).
    what: String,
    psk_file_hex: String,
    /// The sender's first bytes on the wire: the 24-byte nonce, then XSalsa20 ciphertext.
    wire_hex: String,
    /// The plaintext the first decrypted bytes must equal.
    plaintext_prefix_hex: String,
}

/// A socket whose reads replay recorded bytes and whose writes are dropped (our own nonce).
struct Replay {
    input: Vec<u8>,
    pos: usize,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs our pnet handshake over the recorded bytes and reads `len` plaintext bytes.
fn pnet_decrypt(psk_file: &[u8], wire: Vec<u8>, len: usize) -> std::io::Result<Vec<u8>> {
    let key = PreSharedKey::new(psk_bytes(psk_file));
    let socket = Replay {
        input: wire,
        pos: 0,
    };
    block_on(async {
        let mut conn = PnetConfig::new(key)
            .handshake(socket)
            .await
            .map_err(std::io::Error::other)?;
        let mut plain = vec![0u8; len];
        conn.read_exact(&mut plain).await?;
        Ok(plain)
    })
}

#[test]
fn our_pnet_decrypts_go_agent_streams() {
    let transcripts: Vec<PnetTranscript> = fixture("pnet-transcripts.json");
    assert!(
        transcripts.len() >= 2,
        "a synthetic and a captured transcript at least"
    );
    for t in transcripts {
        let want = unhex(&t.plaintext_prefix_hex);
        let got = pnet_decrypt(&unhex(&t.psk_file_hex), unhex(&t.wire_hex), want.len()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{}",
            t.what
        );
    }
}

#[test]
fn another_psk_does_not_decrypt_a_go_stream() {
    let transcripts: Vec<PnetTranscript> = fixture("pnet-transcripts.json");
    let t = &transcripts[0];
    let want = unhex(&t.plaintext_prefix_hex);
    let got = pnet_decrypt(b"another psk\n", unhex(&t.wire_hex), want.len()).unwrap();
    assert_ne!(got, want);
}

// ---- identities ------------------------------------------------------------------------------

#[derive(Deserialize)]
struct GoIdentity {
    name: String,
    private_key_protobuf_hex: String,
    peer_id: String,
}

/// The migration path for a node that Go agents must keep reaching by its name-derived id (a
/// relay above all): its EdgeMesh key, written to our `key_path`, is loaded as is.
#[test]
fn go_name_derived_keys_load_as_our_node_keys() {
    let ids: Vec<GoIdentity> = fixture("identities.json");
    let dir = tempfile::tempdir().unwrap();
    for id in &ids {
        let bytes = unhex(&id.private_key_protobuf_hex);
        let key = Keypair::from_protobuf_encoding(&bytes).unwrap();
        assert_eq!(
            key.public().to_peer_id().to_string(),
            id.peer_id,
            "{}",
            id.name
        );
        let path = dir.path().join(format!("{}.key", id.name));
        std::fs::write(&path, &bytes).unwrap();
        let loaded = edgemesh_tunnel::identity::load_or_create_keypair(&path).unwrap();
        assert_eq!(
            loaded.public().to_peer_id().to_string(),
            id.peer_id,
            "{}",
            id.name
        );
    }
    // md5 of the name as written: `R1` and `r1` are two different peers to a Go agent.
    let peer = |n: &str| ids.iter().find(|i| i.name == n).map(|i| i.peer_id.clone());
    assert!(peer("R1").is_some() && peer("r1").is_some());
    assert_ne!(peer("R1"), peer("r1"));
}

// ---- tunnel-proxy / tunnel-discovery frames ---------------------------------------------------

#[derive(Deserialize)]
struct Frame {
    name: String,
    r#type: i32,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    node_name: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    port: i32,
    /// Which optional fields Go set (proto2 presence), comma-separated.
    fields_set: String,
    bytes_hex: String,
}

impl Frame {
    fn has(&self, field: &str) -> bool {
        self.fields_set.split(',').any(|f| f == field)
    }

    fn opt<T: Clone>(&self, field: &str, value: &T) -> Option<T> {
        self.has(field).then(|| value.clone())
    }

    fn proxy(&self) -> Proxy {
        Proxy {
            r#type: self.opt("type", &self.r#type),
            protocol: self.opt("protocol", &self.protocol),
            node_name: self.opt("node_name", &self.node_name),
            ip: self.opt("ip", &self.ip),
            port: self.opt("port", &self.port),
            reason: None,
        }
    }

    fn discovery(&self) -> Discovery {
        Discovery {
            r#type: self.opt("type", &self.r#type),
            protocol: self.opt("protocol", &self.protocol),
            node_name: self.opt("node_name", &self.node_name),
            peer_id: None,
        }
    }
}

/// What follows the answer on a proxy stream: spliced bytes, which the decoder must leave alone.
const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

/// Decodes one frame from `bytes` followed by [`PAYLOAD`]; returns it and what was left unread.
fn read_then_payload<M: prost::Message + Default>(bytes: &[u8]) -> std::io::Result<(M, Vec<u8>)> {
    let stream = [bytes, PAYLOAD].concat();
    let mut reader = stream.as_slice();
    let msg = block_on(wire::read_msg::<_, M>(&mut reader))?;
    Ok((msg, reader.to_vec()))
}

/// What our writer sends for `msg`, as hex.
fn written<M: prost::Message>(msg: &M) -> std::io::Result<String> {
    let mut out = Vec::new();
    block_on(wire::write_msg(&mut out, msg))?;
    Ok(hex(&out))
}

#[test]
fn go_proxy_frames_decode_and_encode_to_the_same_bytes() {
    let frames: Vec<Frame> = fixture("proxy-frames.json");
    assert!(frames.len() >= 5);
    for f in &frames {
        let go_bytes = unhex(&f.bytes_hex);
        let (msg, rest): (Proxy, _) = read_then_payload(&go_bytes).unwrap();
        assert_eq!(msg, f.proxy(), "decoding Go's {}", f.name);
        assert_eq!(
            rest, PAYLOAD,
            "{}: the decoder must stop at the frame's end",
            f.name
        );
        assert_eq!(
            written(&f.proxy()).unwrap(),
            f.bytes_hex,
            "encoding {}",
            f.name
        );
    }
    let by_name = |n: &str| {
        frames
            .iter()
            .find(|f| f.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    // Our server's answers are what a Go client reads: type only, as Go's FAILED.
    let failed = by_name("failed");
    assert_eq!(
        written(&Proxy::answer(MsgType::Failed)).unwrap(),
        failed.bytes_hex
    );
    // Ours carries its reason after Go's fields, in extension field 100, which Go's decoder
    // skips; Go's FAILED reads as one without a reason.
    let with_reason = written(&Proxy::failed("dial failed")).unwrap();
    // (Both lengths fit one varint byte: two hex digits.)
    assert!(
        with_reason[2..].starts_with(&failed.bytes_hex[2..]),
        "Go's fields first, unchanged: {with_reason}"
    );
    let (go_failed, _): (Proxy, _) = read_then_payload(&unhex(&failed.bytes_hex)).unwrap();
    assert_eq!(
        (go_failed.kind(), go_failed.reason),
        (Some(MsgType::Failed), None)
    );
    // Go's server echoes the whole CONNECT with type SUCCESS: our client sees SUCCESS.
    let (echo, _): (Proxy, _) =
        read_then_payload(&unhex(&by_name("success_echo").bytes_hex)).unwrap();
    assert_eq!(echo.kind(), Some(MsgType::Success));
    // Go's CONNECT asks for `tcp` or EdgeMesh's unframed `udp`; we know both spellings.
    let (tcp, _): (Proxy, _) =
        read_then_payload(&unhex(&by_name("connect_tcp").bytes_hex)).unwrap();
    assert_eq!(
        WireProtocol::parse(tcp.protocol.as_deref().unwrap_or_default()),
        Some(WireProtocol::Tcp)
    );
    let (udp, _): (Proxy, _) =
        read_then_payload(&unhex(&by_name("connect_udp").bytes_hex)).unwrap();
    assert_eq!(
        WireProtocol::parse(udp.protocol.as_deref().unwrap_or_default()),
        Some(WireProtocol::UdpLegacy)
    );
}

#[test]
fn go_discovery_frames_decode_and_encode_to_the_same_bytes() {
    let frames: Vec<Frame> = fixture("discovery-frames.json");
    assert!(frames.len() >= 3);
    for f in &frames {
        let (msg, rest): (Discovery, _) = read_then_payload(&unhex(&f.bytes_hex)).unwrap();
        assert_eq!(msg, f.discovery(), "decoding Go's {}", f.name);
        assert_eq!(rest, PAYLOAD, "{}", f.name);
        assert_eq!(
            written(&f.discovery()).unwrap(),
            f.bytes_hex,
            "encoding {}",
            f.name
        );
    }
}

/// Go's `udp` has no framing of its own: after the CONNECT frame (and the SUCCESS answer) each
/// datagram is written to the stream as it is, and each read is taken as one datagram
/// (`netutil.ProxyConnUDP`). Ours, in that mode, reads and writes the same bytes.
#[test]
fn go_unframed_udp_streams_read_and_write_as_go_does() {
    use edgemesh_tunnel::udp::{Framing, read_datagram, write_datagram};
    let frames: Vec<Frame> = fixture("proxy-frames.json");
    let connect = frames.iter().find(|f| f.name == "connect_udp").unwrap();
    // A DNS query for example.org, as a Go client would send it after the CONNECT.
    let datagram = unhex("abcd01000001000000000000076578616d706c65036f72670000010001");
    let stream = [unhex(&connect.bytes_hex), datagram.clone()].concat();
    block_on(async {
        let mut reader = stream.as_slice();
        let msg: Proxy = wire::read_msg(&mut reader).await.unwrap();
        assert_eq!(msg.protocol.as_deref(), Some("udp"));
        let mut buf = vec![0u8; 4096];
        let n = read_datagram(&mut reader, &mut buf, Framing::Unframed)
            .await
            .unwrap();
        assert_eq!(n, Some(datagram.len()));
        assert_eq!(&buf[..datagram.len()], &datagram[..]);
        assert_eq!(
            read_datagram(&mut reader, &mut buf, Framing::Unframed)
                .await
                .unwrap(),
            None
        );
        let mut out = Vec::new();
        write_datagram(&mut out, &datagram, Framing::Unframed)
            .await
            .unwrap();
        assert_eq!(out, datagram, "Go reads the datagram's bytes, nothing else");
    });
}
