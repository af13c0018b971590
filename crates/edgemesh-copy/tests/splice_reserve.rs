//! Splice's pipes take four descriptors a connection; they must not come out of the reserve the
//! data path leaves to the rest of the process (`edgemesh_host::fd_in_reserve`, issue #17): the
//! copy then stays in user space, and every byte still arrives. Its own test binary, because it
//! lowers the process's descriptor limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::fd::AsRawFd as _;

use edgemesh_copy::{
    Options, adaptive_both_ways, moved_to_splice, splice_both_ways, splice_refused,
};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A connected pair of loopback TCP sockets.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (connected.unwrap(), accepted.unwrap().0)
}

/// Sends 2 MB (enough to make the adaptive copy want splice) from `from` and reads it at `to`.
async fn bulk_arrives(mut from: TcpStream, to: &mut TcpStream) {
    let bulk: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let sent = bulk.clone();
    let sending = tokio::spawn(async move {
        from.write_all(&sent).await.unwrap();
        from.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    to.read_to_end(&mut got).await.unwrap();
    sending.await.unwrap();
    assert!(got == bulk, "the bulk transfer arrives whole and in order");
}

/// Sets the soft limit 16 above the next free descriptor, so that every descriptor from there
/// on lies in the reserve (`min(256, limit / 4)` below the limit): files are opened first until
/// the next number is at least 64, which makes a quarter of the limit more than 16. Those files
/// are returned, to be kept open.
fn reserve_from_the_next_descriptor(hard: u64) -> Vec<std::fs::File> {
    let mut fillers = Vec::new();
    loop {
        let next = std::fs::File::open("/dev/null").unwrap();
        let next_fd = u64::try_from(next.as_raw_fd()).unwrap();
        if next_fd >= 64 {
            drop(next);
            setrlimit(Resource::RLIMIT_NOFILE, next_fd + 16, hard).unwrap();
            return fillers;
        }
        fillers.push(next);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn pipes_are_not_taken_from_the_descriptor_reserve() {
    let (adaptive_client, mut adaptive_near) = pair().await;
    let (mut adaptive_far, mut adaptive_server) = pair().await;
    let (splice_client, mut splice_near) = pair().await;
    let (mut splice_far, mut splice_server) = pair().await;

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let fillers = reserve_from_the_next_descriptor(hard);

    let (refused, moved) = (splice_refused(), moved_to_splice());
    let adaptive = tokio::spawn(async move {
        let options = Options::default();
        adaptive_both_ways(&mut adaptive_near, &mut adaptive_far, &(), options).await
    });
    bulk_arrives(adaptive_client, &mut adaptive_server).await;
    drop(adaptive_server);
    adaptive.await.unwrap().unwrap();
    assert_eq!(
        (splice_refused() - refused, moved_to_splice() - moved),
        (1, 0),
        "the adaptive copy must stay in user space rather than take pipes from the reserve"
    );

    // The adaptive copy's sockets are closed: their numbers are free again, below the reserve.
    let more_fillers = reserve_from_the_next_descriptor(hard);
    let spliced = tokio::spawn(async move {
        let options = Options::default();
        splice_both_ways(&mut splice_near, &mut splice_far, &(), options).await
    });
    bulk_arrives(splice_client, &mut splice_server).await;
    drop(splice_server);
    spliced.await.unwrap().unwrap();
    assert_eq!(
        splice_refused() - refused,
        2,
        "the forced splice must fall back to the user-space copy (and count it) too"
    );

    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    drop((fillers, more_fillers));
}
