//! The buffer of one direction of a user-space copy: small at first, larger as traffic shows it
//! pays, and only held while bytes are in flight.
//!
//! Most connections of a mesh are small or idle (pooled HTTP, SSH, watches): a 256 KiB buffer
//! per direction for each of them is memory for nothing. A direction starts at 1 KiB and moves
//! up a size (16 KiB, then the maximum) after a few reads in a row filled its buffer, the sign
//! that more was waiting. It never moves down: the buffer is dropped whenever the direction
//! waits for data, so a size is only paid for while bytes flow.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::BytesMut;

/// The largest buffer a direction grows to unless the caller says otherwise (the proxy's
/// benchmark showed no gain beyond it).
pub const DEFAULT_MAX_BUFFER: usize = 256 * 1024;

/// The sizes a direction goes through, smallest first; each capped at the caller's maximum.
const SIZES: [usize; 3] = [1024, 16 * 1024, DEFAULT_MAX_BUFFER];

/// Reads in a row that filled the buffer before it grows one size.
const FULL_READS_TO_GROW: u8 = 2;

/// Bytes of buffer held by all copies of this process right now.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Bytes of buffer held by all copies of this process right now, for tests and debugging: an
/// idle connection adds nothing to it.
pub fn held_buffer_bytes() -> usize {
    HELD.load(Relaxed)
}

/// Which size a direction is at and how close it is to the next one.
#[derive(Debug)]
pub(crate) struct Sizer {
    step: usize,
    full_reads: u8,
    max: usize,
}

impl Sizer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            step: 0,
            full_reads: 0,
            max: max.max(1),
        }
    }

    /// The size of the next buffer to take.
    pub(crate) fn size(&self) -> usize {
        SIZES.get(self.step).map_or(self.max, |&s| s.min(self.max))
    }

    /// Grown to the largest size it may take.
    pub(crate) fn at_max(&self) -> bool {
        self.size() >= self.max
    }

    /// Learns from a read of `n` bytes into a buffer of `capacity`.
    pub(crate) fn after_read(&mut self, n: usize, capacity: usize) {
        if n < capacity {
            self.full_reads = 0;
            return;
        }
        self.full_reads += 1;
        if self.full_reads >= FULL_READS_TO_GROW && self.size() < self.max {
            self.step += 1;
            self.full_reads = 0;
        }
    }
}

/// A buffer that counts itself in [`held_buffer_bytes`] while it lives.
#[derive(Debug)]
pub(crate) struct Buffer {
    pub(crate) bytes: BytesMut,
    counted: usize,
}

impl Buffer {
    pub(crate) fn new(size: usize) -> Self {
        let bytes = BytesMut::with_capacity(size);
        let counted = bytes.capacity();
        HELD.fetch_add(counted, Relaxed);
        Self { bytes, counted }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        HELD.fetch_sub(self.counted, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_after_full_reads_in_a_row_up_to_the_maximum() {
        let mut sizer = Sizer::new(DEFAULT_MAX_BUFFER);
        assert_eq!(sizer.size(), 1024);
        sizer.after_read(1024, 1024);
        sizer.after_read(10, 1024); // a short read starts the count again
        sizer.after_read(1024, 1024);
        assert_eq!(sizer.size(), 1024);
        sizer.after_read(1024, 1024);
        assert_eq!(sizer.size(), 16 * 1024);
        for _ in 0..10 {
            let size = sizer.size();
            sizer.after_read(size, size);
        }
        assert_eq!(sizer.size(), DEFAULT_MAX_BUFFER);
    }

    #[test]
    fn never_exceeds_the_callers_maximum() {
        let mut sizer = Sizer::new(4096);
        for _ in 0..10 {
            let size = sizer.size();
            assert!(size <= 4096);
            sizer.after_read(size, size);
        }
        assert_eq!(sizer.size(), 4096);
        assert_eq!(Sizer::new(0).size(), 1);
    }
}
