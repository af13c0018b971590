//! The copier over real loopback TCP: both ways, half-close, counting, idle timeout, errors,
//! and no buffer held by an idle connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use edgemesh_copy::{
    Broke, Direction, End, Meter, Options, Side, adaptive_both_ways, both_ways, held_buffer_bytes,
    moved_to_splice, splice_both_ways,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The buffer checks read a count of every copy in the process (`held_buffer_bytes`): the tests
/// take turns, so that no other test's copy is holding a buffer at the moment one checks.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Default)]
struct Counts {
    a_to_b: AtomicU64,
    b_to_a: AtomicU64,
}

impl Meter for Counts {
    fn moved(&self, direction: Direction, bytes: u64) {
        match direction {
            Direction::AToB => self.a_to_b.fetch_add(bytes, Relaxed),
            Direction::BToA => self.b_to_a.fetch_add(bytes, Relaxed),
        };
    }
}

/// A connected pair of loopback TCP sockets.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

/// Which of the copier's ways of moving bytes a test runs.
#[derive(Clone, Copy, Debug)]
enum Copier {
    Copy,
    Splice,
    /// The user-space copy, then splice once a direction streams.
    Adaptive,
}

/// client ↔ (near, far) ↔ server, with the copy between near and far.
struct Line {
    client: TcpStream,
    server: TcpStream,
    copy: tokio::task::JoinHandle<(Result<End, Broke>, Counts)>,
}

async fn line(copier: Copier, idle_timeout: Option<Duration>) -> Line {
    let (client, near) = pair().await;
    let (far, server) = pair().await;
    let copy = tokio::spawn(async move {
        let (mut near, mut far, counts) = (near, far, Counts::default());
        let options = Options {
            idle_timeout,
            ..Options::default()
        };
        let end = match copier {
            Copier::Copy => both_ways(&mut near, &mut far, &counts, options).await,
            Copier::Splice => splice_both_ways(&mut near, &mut far, &counts, options).await,
            Copier::Adaptive => adaptive_both_ways(&mut near, &mut far, &counts, options).await,
        };
        (end, counts)
    });
    Line {
        client,
        server,
        copy,
    }
}

/// What the copies hold once they are back to waiting (they get there right after their last
/// write; give them up to a second).
async fn settled_buffer_bytes() -> usize {
    for _ in 0..100 {
        if held_buffer_bytes() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held_buffer_bytes()
}

async fn half_close_both_ways(copier: Copier) {
    let Line {
        mut client,
        mut server,
        copy,
    } = line(copier, None).await;
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&sent).await.unwrap();
        client.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        back
    });
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, payload, "all bytes arrive before the end of stream");
    // The client's direction ended; the other one still flows.
    server.write_all(b"reply").await.unwrap();
    server.shutdown().await.unwrap();
    assert_eq!(writer.await.unwrap(), b"reply");
    let (end, counts) = copy.await.unwrap();
    assert_eq!(end.unwrap(), End::Done);
    assert_eq!(counts.a_to_b.load(Relaxed), 3_000_000);
    assert_eq!(counts.b_to_a.load(Relaxed), 5);
}

#[tokio::test]
async fn copy_passes_bytes_and_half_closes_both_ways() {
    let _serial = SERIAL.lock().await;
    half_close_both_ways(Copier::Copy).await;
}

#[tokio::test]
async fn splice_passes_bytes_and_half_closes_both_ways() {
    let _serial = SERIAL.lock().await;
    half_close_both_ways(Copier::Splice).await;
}

/// 3 MB one way: the adaptive copy moves to splice in the middle of it.
#[tokio::test]
async fn adaptive_passes_bytes_and_half_closes_both_ways() {
    let _serial = SERIAL.lock().await;
    half_close_both_ways(Copier::Adaptive).await;
}

/// Messages both ways, a bulk transfer that moves the copy to splice, then messages again:
/// every byte arrives in order across the switch, and the copy holds no buffer after it.
#[tokio::test]
async fn adaptive_keeps_order_across_the_switch_to_splice() {
    let _serial = SERIAL.lock().await;
    let Line {
        mut client,
        mut server,
        copy,
    } = line(Copier::Adaptive, None).await;
    let switched_before = moved_to_splice();
    let mut reply = [0u8; 4];
    for round in 0..20u8 {
        client.write_all(&[round; 100]).await.unwrap();
        let mut request = [0u8; 100];
        server.read_exact(&mut request).await.unwrap();
        assert_eq!(request, [round; 100]);
        server.write_all(&[round; 4]).await.unwrap();
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, [round; 4]);
    }
    assert_eq!(
        moved_to_splice(),
        switched_before,
        "messages stay in the user-space copy"
    );
    let bulk: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let sent = bulk.clone();
    let sending = tokio::spawn(async move {
        client.write_all(&sent).await.unwrap();
        client
    });
    let mut got = vec![0u8; bulk.len()];
    server.read_exact(&mut got).await.unwrap();
    assert!(got == bulk, "the bulk transfer arrives whole and in order");
    let mut client = sending.await.unwrap();
    assert_eq!(
        settled_buffer_bytes().await,
        0,
        "spliced: no user-space buffer"
    );
    server.write_all(b"after").await.unwrap();
    let mut after = [0u8; 5];
    client.read_exact(&mut after).await.unwrap();
    assert_eq!(&after, b"after");
    client.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
    let (end, counts) = copy.await.unwrap();
    assert_eq!(end.unwrap(), End::Done);
    assert_eq!(counts.a_to_b.load(Relaxed), 20 * 100 + 2_000_000);
    assert_eq!(counts.b_to_a.load(Relaxed), 20 * 4 + 5);
}

async fn idle_ends(copier: Copier) {
    let Line {
        mut client,
        mut server,
        copy,
    } = line(copier, Some(Duration::from_millis(300))).await;
    client.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    server.read_exact(&mut got).await.unwrap();
    let started = std::time::Instant::now();
    let (end, _) = tokio::time::timeout(Duration::from_secs(10), copy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end.unwrap(), End::Idle);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn copy_ends_after_the_idle_timeout() {
    let _serial = SERIAL.lock().await;
    idle_ends(Copier::Copy).await;
}

#[tokio::test]
async fn splice_ends_after_the_idle_timeout() {
    let _serial = SERIAL.lock().await;
    idle_ends(Copier::Splice).await;
}

#[tokio::test]
async fn adaptive_ends_after_the_idle_timeout() {
    let _serial = SERIAL.lock().await;
    idle_ends(Copier::Adaptive).await;
}

/// A side that breaks (RST) ends the copy with an error naming that side, not with the clean end
/// the other side would pass on as a FIN.
async fn a_reset_side_is_named(copier: Copier, broken: Side) {
    let Line {
        mut client,
        mut server,
        copy,
    } = line(copier, None).await;
    let (victim, survivor) = match broken {
        Side::A => (client, &mut server),
        Side::B => (server, &mut client),
    };
    socket2::SockRef::from(&victim)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(victim); // RST: reads from it fail, and so do writes towards it
    let chunk = vec![1u8; 64 * 1024];
    // Keep writing until the copy notices (bounded: the copy fails on its first writes).
    for _ in 0..100 {
        if survivor.write_all(&chunk).await.is_err() || copy.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (end, _) = copy.await.unwrap();
    let broke = end.expect_err("a reset must end the copy with an error");
    assert_eq!(broke.side, broken, "{broke}");
}

#[tokio::test]
async fn copy_names_the_side_that_broke() {
    let _serial = SERIAL.lock().await;
    a_reset_side_is_named(Copier::Copy, Side::B).await;
    a_reset_side_is_named(Copier::Copy, Side::A).await;
}

#[tokio::test]
async fn splice_names_the_side_that_broke() {
    let _serial = SERIAL.lock().await;
    a_reset_side_is_named(Copier::Splice, Side::B).await;
    a_reset_side_is_named(Copier::Splice, Side::A).await;
}

#[tokio::test]
async fn adaptive_names_the_side_that_broke() {
    let _serial = SERIAL.lock().await;
    a_reset_side_is_named(Copier::Adaptive, Side::B).await;
    a_reset_side_is_named(Copier::Adaptive, Side::A).await;
}

/// 100 connections that moved bytes and now wait hold no copy buffer; while bytes flow they do.
#[tokio::test]
async fn idle_connections_hold_no_buffer() {
    let _serial = SERIAL.lock().await;
    let mut lines = Vec::new();
    for _ in 0..100 {
        let mut line = line(Copier::Copy, None).await;
        line.client.write_all(&[7u8; 100_000]).await.unwrap();
        let mut got = vec![0u8; 100_000];
        line.server.read_exact(&mut got).await.unwrap();
        lines.push(line);
    }
    assert_eq!(
        settled_buffer_bytes().await,
        0,
        "idle connections hold no buffer"
    );
    for line in lines {
        drop((line.client, line.server));
        let _ = line.copy.await;
    }
}

/// A direction whose writer is blocked holds one buffer (at most the maximum size) until the
/// bytes are written; then it holds none.
#[tokio::test]
async fn a_blocked_direction_holds_one_buffer_until_it_is_written() {
    let _serial = SERIAL.lock().await;
    let Line {
        mut client,
        mut server,
        copy,
    } = line(Copier::Copy, None).await;
    let writer = tokio::spawn(async move {
        client.write_all(&vec![3u8; 8 * 1024 * 1024]).await.unwrap();
        client
    });
    // The server does not read: socket buffers fill up and the copy waits with bytes in hand.
    let mut held = 0;
    for _ in 0..300 {
        held = held_buffer_bytes();
        if held > 0 && !writer.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            held = held_buffer_bytes();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held > 0, "a blocked copy holds its bytes");
    assert!(
        held <= edgemesh_copy::DEFAULT_MAX_BUFFER,
        "one direction, one buffer: {held}"
    );
    let mut got = vec![0u8; 8 * 1024 * 1024];
    server.read_exact(&mut got).await.unwrap();
    let client = writer.await.unwrap();
    assert_eq!(settled_buffer_bytes().await, 0);
    drop((client, server));
    let _ = copy.await;
}

/// One direction ended (the client shut down its writing), the other waits: nothing is held.
#[tokio::test]
async fn a_half_closed_connection_holds_no_buffer() {
    let _serial = SERIAL.lock().await;
    let Line {
        mut client,
        mut server,
        copy,
    } = line(Copier::Copy, None).await;
    client.write_all(&[9u8; 50_000]).await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), 50_000);
    assert_eq!(settled_buffer_bytes().await, 0);
    server.write_all(b"still open").await.unwrap();
    let mut back = [0u8; 10];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"still open");
    drop((client, server));
    let _ = copy.await;
}
