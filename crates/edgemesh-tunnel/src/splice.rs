//! Copying both ways between two byte streams without holding buffers while idle.
//!
//! `tokio::io::copy_bidirectional` keeps two 8 KiB buffers for the life of every connection:
//! 16 KiB per tunnelled connection on each node, most of them idle (SSH sessions, pooled
//! HTTP connections). Here a direction holds a buffer only while data is in flight: it is
//! taken when a read is attempted and dropped as soon as the reader has nothing more and the
//! buffer is drained, so an idle connection holds none.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Size of the buffer a busy direction uses.
const BUF_SIZE: usize = 16 * 1024;

/// One direction: read from one side, write to the other.
#[derive(Default)]
struct Half {
    buf: Option<Box<[u8]>>,
    pos: usize,
    len: usize,
    read_done: bool,
    need_flush: bool,
    done: bool,
    copied: u64,
}

impl Half {
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            ready!(self.poll_drain(cx, writer.as_mut()))?;
            if self.read_done {
                ready!(writer.as_mut().poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(self.copied));
            }
            let buf = self
                .buf
                .get_or_insert_with(|| vec![0u8; BUF_SIZE].into_boxed_slice());
            let mut read = ReadBuf::new(buf);
            match reader.as_mut().poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    self.read_done = n == 0;
                    (self.pos, self.len) = (0, n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Idle: give the buffer back, and push out what was written so far.
                    self.buf = None;
                    if self.need_flush {
                        ready!(writer.as_mut().poll_flush(cx))?;
                        self.need_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Writes out what the buffer holds.
    fn poll_drain<W>(
        &mut self,
        cx: &mut Context<'_>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + ?Sized,
    {
        while self.pos < self.len {
            let Some(buf) = &self.buf else {
                return Poll::Ready(Err(io::Error::other("splice buffer lost with data in it")));
            };
            let n = ready!(writer.as_mut().poll_write(cx, &buf[self.pos..self.len]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
            self.copied += n as u64;
            self.need_flush = true;
        }
        Poll::Ready(Ok(()))
    }
}

/// Copies `a` → `b` and `b` → `a` until both directions have reached end of stream (each
/// end is passed on as a shutdown of the other side's write half). Returns the bytes copied
/// each way, like `tokio::io::copy_bidirectional`.
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let (mut a_to_b, mut b_to_a) = (Half::default(), Half::default());
    poll_fn(|cx| {
        let forward = match a_to_b.done {
            true => Poll::Ready(Ok(a_to_b.copied)),
            false => a_to_b.poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b)),
        };
        let backward = match b_to_a.done {
            true => Poll::Ready(Ok(b_to_a.copied)),
            false => b_to_a.poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a)),
        };
        match (forward, backward) {
            (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
            (Poll::Ready(Ok(f)), Poll::Ready(Ok(r))) => Poll::Ready(Ok((f, r))),
            _ => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, duplex};

    use super::*;

    #[tokio::test]
    async fn copies_both_ways_and_passes_on_end_of_stream() {
        let (mut client, mut near) = duplex(1024);
        let (mut far, mut server) = duplex(1024);
        let spliced = tokio::spawn(async move { splice(&mut near, &mut far).await });
        let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await?;
            client.shutdown().await?;
            let mut back = Vec::new();
            client.read_to_end(&mut back).await?;
            io::Result::Ok(back)
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, payload);
        server.write_all(b"reply").await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        assert_eq!(writer.await.unwrap().unwrap(), b"reply");
        assert_eq!(spliced.await.unwrap().unwrap(), (200_000, 5));
    }

    #[tokio::test]
    async fn an_idle_direction_holds_no_buffer() {
        let (_client, mut near) = duplex(64);
        let (_server, mut far) = duplex(64);
        let mut half = Half::default();
        let polled =
            poll_fn(|cx| Poll::Ready(half.poll_copy(cx, Pin::new(&mut near), Pin::new(&mut far))))
                .await;
        assert!(polled.is_pending());
        assert!(half.buf.is_none());
    }

    #[tokio::test]
    async fn a_reset_side_ends_the_splice_with_an_error() {
        let (client, mut near) = duplex(64);
        let (mut far, server) = duplex(64);
        drop(server); // writes to `far` now fail
        let spliced = tokio::spawn(async move { splice(&mut near, &mut far).await });
        let mut client = client;
        client.write_all(b"into the void").await.unwrap();
        assert!(spliced.await.unwrap().is_err());
    }
}
