//! The hostname (HTTP), TCP echo and UDP echo servers.

use std::io::{self, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

/// A client that sends nothing for this long is dropped.
pub(super) const IDLE: Duration = Duration::from_secs(30);
/// Largest request head read.
pub(super) const MAX_HEAD: usize = 16 * 1024;

/// Answers one HTTP request with `name\n` and closes (like the `hostname` image).
pub(super) fn hostname(mut stream: TcpStream, name: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    read_head(&mut stream)?;
    let body = format!("{name}\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}

/// Reads up to the end of the request head (`\r\n\r\n`); returns it.
pub(super) fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(io::Error::other("request head too large"));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the request head ended",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Echoes bytes until the client half-closes, then closes.
pub(super) fn tcp_echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE))?;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// Echoes each datagram to its sender, forever.
pub(super) fn udp_echo(socket: &UdpSocket) -> io::Result<()> {
    let mut buf = [0u8; 65536];
    loop {
        let (n, peer) = socket.recv_from(&mut buf)?;
        if let Err(e) = socket.send_to(&buf[..n], peer) {
            eprintln!("udp echo to {peer}: {e}");
        }
    }
}
