//! Datagrams without a 64 KiB buffer per flow.
//!
//! A UDP receive needs room for the largest datagram (64 KiB) or it truncates, and a buffer
//! held by each flow's task for its whole life costs 64 KiB per flow per direction: thousands of
//! flows made hundreds of megabytes at the peak, part of which the allocator kept after the
//! flows ended (issue #17: +17 % RSS after rounds of 200 flows). Here the receive lands in one
//! scratch buffer per thread and the flow gets a copy of exactly the datagram's size; a stream
//! of framed datagrams is read into a buffer that grows to the largest frame seen, not to the
//! largest possible one.

use std::cell::RefCell;
use std::io;

use tokio::net::UdpSocket;

/// Largest UDP payload (and largest datagram a tunnel frame carries).
pub const MAX_DATAGRAM: usize = 65_535;

thread_local! {
    /// The receive buffer of every flow served on this thread: it is used only between a
    /// readiness event and the synchronous `try_recv` that follows, never across an await.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; MAX_DATAGRAM].into_boxed_slice());
}

/// The next datagram on the connected `socket`, in a vector of its own size.
pub async fn recv_datagram(socket: &UdpSocket) -> io::Result<Vec<u8>> {
    loop {
        socket.readable().await?;
        let received: io::Result<Vec<u8>> = SCRATCH.with_borrow_mut(|buf| {
            let n = socket.try_recv(buf)?;
            Ok(buf.get(..n).unwrap_or_default().to_vec())
        });
        match received {
            // Readiness can be spurious (another task took the datagram): wait again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Makes `buf` exactly `len` bytes long for the next datagram; its capacity only grows, so a
/// flow of small datagrams keeps a small buffer.
pub fn sized_for(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    buf.resize(len, 0);
    buf.as_mut_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_datagram_comes_whole_in_a_vector_of_its_size() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        let big = vec![7u8; 60_000];
        a.send(b"first").await.unwrap();
        a.send(&big).await.unwrap();
        a.send(b"").await.unwrap();
        let first = recv_datagram(&b).await.unwrap();
        assert_eq!(first, b"first");
        assert_eq!(first.capacity(), 5, "no 64 KiB buffer handed to the flow");
        assert_eq!(recv_datagram(&b).await.unwrap(), big);
        assert_eq!(recv_datagram(&b).await.unwrap(), b"");
    }

    #[test]
    fn the_frame_buffer_grows_to_the_largest_frame_only() {
        let mut buf = Vec::new();
        assert_eq!(sized_for(&mut buf, 100).len(), 100);
        assert_eq!(sized_for(&mut buf, 10).len(), 10);
        assert!(buf.capacity() < 1_024, "capacity {}", buf.capacity());
    }
}
