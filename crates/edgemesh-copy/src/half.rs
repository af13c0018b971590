//! One direction of a user-space copy: read from one side into the buffer, write it all to the
//! other, pass an end of stream on as a shutdown of the writer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::buffer::{Buffer, Sizer};
use crate::{Broke, Direction, Meter, Side};

/// The state of one direction between polls.
#[derive(Debug)]
pub(crate) struct Half {
    direction: Direction,
    sizer: Sizer,
    /// Taken when a read is tried, dropped when the reader has nothing and all was written.
    buf: Option<Buffer>,
    /// Bytes of `buf` already written.
    pos: usize,
    read_done: bool,
    need_flush: bool,
    done: bool,
}

impl Half {
    pub(crate) fn new(direction: Direction, max_buffer: usize) -> Self {
        Self {
            direction,
            sizer: Sizer::new(max_buffer),
            buf: None,
            pos: 0,
            read_done: false,
            need_flush: false,
            done: false,
        }
    }

    /// Holds no bytes and waits on its reader, with both ends open: the moment this direction
    /// can be handed to another copier without losing or reordering anything.
    pub(crate) fn quiescent(&self) -> bool {
        self.buf.is_none() && !self.read_done && !self.done
    }

    /// Has read whole buffers until it grew to the largest: a stream of bulk data, not
    /// request/response messages.
    pub(crate) fn streaming(&self) -> bool {
        self.sizer.at_max()
    }

    /// Ready once the reader reached end of stream and the writer was shut down, or with the
    /// side that broke.
    pub(crate) fn poll_copy<R, W, M>(
        &mut self,
        cx: &mut Context<'_>,
        reader: Pin<&mut R>,
        writer: Pin<&mut W>,
        meter: &M,
    ) -> Poll<Result<(), Broke>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
        M: Meter + ?Sized,
    {
        let (from, to) = match self.direction {
            Direction::AToB => (Side::A, Side::B),
            Direction::BToA => (Side::B, Side::A),
        };
        self.poll_copy_io(cx, reader, writer, meter)
            .map_err(|(reader_broke, error)| Broke {
                side: if reader_broke { from } else { to },
                error,
            })
    }

    /// [`Half::poll_copy`], the error paired with whether it came from the reader.
    fn poll_copy_io<R, W, M>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
        meter: &M,
    ) -> Poll<Result<(), (bool, io::Error)>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
        M: Meter + ?Sized,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            let writer_broke = |e| (false, e);
            ready!(self.poll_write_out(cx, writer.as_mut(), meter)).map_err(writer_broke)?;
            if self.read_done {
                ready!(writer.as_mut().poll_shutdown(cx)).map_err(writer_broke)?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            let size = self.sizer.size();
            if self.buf.as_ref().is_some_and(|b| b.bytes.capacity() < size) {
                self.buf = None; // grown: the next buffer is the larger one
            }
            let buf = self.buf.get_or_insert_with(|| Buffer::new(size));
            buf.bytes.clear();
            self.pos = 0;
            let capacity = buf.bytes.capacity();
            match tokio_util::io::poll_read_buf(reader.as_mut(), cx, &mut buf.bytes) {
                Poll::Ready(Ok(0)) => {
                    // End of stream: the other direction may run for long yet, without it.
                    self.read_done = true;
                    self.buf = None;
                }
                Poll::Ready(Ok(n)) => self.sizer.after_read(n, capacity),
                Poll::Ready(Err(e)) => return Poll::Ready(Err((true, e))),
                Poll::Pending => {
                    // Idle: give the buffer back, and push out what was written so far.
                    self.buf = None;
                    if self.need_flush {
                        ready!(writer.as_mut().poll_flush(cx)).map_err(writer_broke)?;
                        self.need_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Writes out what the buffer holds beyond `pos`.
    fn poll_write_out<W, M>(
        &mut self,
        cx: &mut Context<'_>,
        mut writer: Pin<&mut W>,
        meter: &M,
    ) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + ?Sized,
        M: Meter + ?Sized,
    {
        let Some(buf) = &self.buf else {
            return Poll::Ready(Ok(()));
        };
        while self.pos < buf.bytes.len() {
            let n = ready!(writer.as_mut().poll_write(cx, &buf.bytes[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
            self.need_flush = true;
            meter.moved(self.direction, n as u64);
        }
        Poll::Ready(Ok(()))
    }
}
