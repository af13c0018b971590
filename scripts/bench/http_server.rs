//! A small, fast HTTP/1.1 backend for scripts/bench-datapath.sh (std only, built with `rustc -O`).
//!
//! `http_server ADDR`: answers every request with `200 hello\n`, keeps connections alive unless
//! the request says `Connection: close` (any case, with or without the space: wrk sends the
//! header as typed); then it closes first, so the TIME_WAIT is on this side, as with a real
//! server. One thread per connection: wrk uses at most 64.
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n";

fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut close = false;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            close |= asks_to_close(&line);
        }
        writer.write_all(RESPONSE)?;
        if close {
            return Ok(());
        }
    }
}

/// Whether a header line is `Connection:` with a `close` token (the value is a token list).
fn asks_to_close(line: &str) -> bool {
    let Some((name, value)) = line.split_once(':') else {
        return false;
    };
    name.trim().eq_ignore_ascii_case("connection")
        && value.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    eprintln!("http_server listening on {addr}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}
