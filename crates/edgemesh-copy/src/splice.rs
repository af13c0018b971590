//! TCP↔TCP copy with `splice(2)`: socket → pipe → socket, the bytes never enter user space.
//! Safe code only: nix wraps the syscalls; tokio's readiness drives the non-blocking calls.
//! Each direction owns a pipe (two file descriptors), so a spliced connection costs six fds;
//! pipes are made only outside the process's descriptor reserve ([`Pipes::new`]).

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use edgemesh_host::fd_in_reserve;

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::{Broke, Direction, Meter, Side};

/// Most bytes moved per splice call; the pipe is enlarged to match when the kernel allows.
const CHUNK: usize = 256 * 1024;

/// The two pipes of a spliced connection, one per direction.
pub(crate) struct Pipes {
    forward: Pipe,
    backward: Pipe,
}

impl Pipes {
    /// Both pipes, or `None` when the process cannot spare their four descriptors: out of them,
    /// or one of them in the reserve the data path leaves to the rest of the process
    /// (`edgemesh_host::fd_in_reserve`). A connection accepted just below the reserve would
    /// otherwise take four more in it (issue #17); the caller copies in user space instead.
    pub(crate) fn new() -> Option<Pipes> {
        let made = Self::outside_the_reserve();
        if made.is_none() {
            REFUSED.fetch_add(1, Ordering::Relaxed);
        }
        made
    }

    fn outside_the_reserve() -> Option<Pipes> {
        let pipes = Pipes {
            forward: Pipe::new().ok()?,
            backward: Pipe::new().ok()?,
        };
        let in_reserve = [&pipes.forward, &pipes.backward]
            .iter()
            .any(|pipe| fd_in_reserve(pipe.read.as_fd()) || fd_in_reserve(pipe.write.as_fd()));
        (!in_reserve).then_some(pipes)
    }
}

/// Copies that wanted splice's pipes and stayed in user space (see [`Pipes::new`]).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many copies of this process stayed in user space because splice's pipes would have
/// taken descriptors from the reserve (or there were none to take).
pub fn splice_refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Splices both ways through `pipes` until each direction reached EOF (and half-closed the
/// other side), or a side broke.
pub(crate) async fn both_ways<M: Meter + ?Sized>(
    a: &TcpStream,
    b: &TcpStream,
    pipes: Pipes,
    meter: &M,
) -> Result<(), Broke> {
    let forward = one_way(a, b, pipes.forward, Direction::AToB, meter);
    let backward = one_way(b, a, pipes.backward, Direction::BToA, meter);
    tokio::try_join!(forward, backward).map(|_| ())
}

async fn one_way<M: Meter + ?Sized>(
    from: &TcpStream,
    to: &TcpStream,
    pipe: Pipe,
    direction: Direction,
    meter: &M,
) -> Result<(), Broke> {
    let (from_side, to_side) = match direction {
        Direction::AToB => (Side::A, Side::B),
        Direction::BToA => (Side::B, Side::A),
    };
    let broke = |side| move |error| Broke { side, error };
    loop {
        let n = fill(from, &pipe).await.map_err(broke(from_side))?;
        if n == 0 {
            shutdown_write(to);
            return Ok(());
        }
        drain(&pipe, to, n).await.map_err(broke(to_side))?;
        meter.moved(direction, n as u64);
    }
}

/// Half-closes `stream` for writing. A peer that already went away makes this fail; that is
/// not an error of the copy (the other direction reports it if it matters).
fn shutdown_write(stream: &TcpStream) {
    let _ = SockRef::from(stream).shutdown(Shutdown::Write);
}

/// A non-blocking pipe used as the in-kernel buffer of one direction.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // A larger pipe means fewer syscalls per byte; the default (64 KiB) is kept if the
        // kernel refuses (pipe-max-size or the per-user pipe budget).
        let wanted = i32::try_from(CHUNK).unwrap_or(i32::MAX);
        let capacity = fcntl(&write, FcntlArg::F_SETPIPE_SZ(wanted))
            .ok()
            .and_then(|c| usize::try_from(c).ok())
            .unwrap_or(64 * 1024)
            .min(CHUNK);
        Ok(Self {
            read,
            write,
            capacity,
        })
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE
}

/// Moves what the socket has (up to the pipe's capacity) into the empty pipe; 0 means EOF.
async fn fill(from: &TcpStream, pipe: &Pipe) -> io::Result<usize> {
    loop {
        from.readable().await?;
        let moved = from.try_io(Interest::READABLE, || {
            splice(from, None, &pipe.write, None, pipe.capacity, flags()).map_err(io::Error::from)
        });
        match moved {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Writes all `n` bytes held in the pipe to the socket.
async fn drain(pipe: &Pipe, to: &TcpStream, mut n: usize) -> io::Result<()> {
    while n > 0 {
        to.writable().await?;
        let moved = to.try_io(Interest::WRITABLE, || {
            splice(&pipe.read, None, to, None, n, flags()).map_err(io::Error::from)
        });
        match moved {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(m) => n -= m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
