//! UDP over a tunnel stream: every datagram travels as a 2-byte big-endian length followed by
//! its bytes, so boundaries survive; one stream carries a whole flow (never one per datagram),
//! and a flow with no datagram either way for the idle timeout ends.
//!
//! EdgeMesh's Go agents speak only `udp`: datagrams written to the stream as they are, each
//! read taken as one datagram ([`Framing::Unframed`]). Boundaries survive only while the stream
//! hands over one write per read (usually so for sparse traffic such as DNS); it is spoken only
//! with Go agents, while any are left in the mesh.
//!
//! Loss, not stalls: a full queue drops the datagram, as a network would.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgemesh_copy::Activity;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::UdpSocket;
use tokio::sync::{Mutex, mpsc};

pub use edgemesh_copy::datagram::MAX_DATAGRAM;
use edgemesh_copy::datagram::{recv_datagram, sized_for};

use crate::slots::SlotPressure;
/// Datagrams queued per direction of a flow before new ones are dropped.
const QUEUE: usize = 1024;

/// How datagrams are delimited on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `udp-framed`: a 2-byte length before each datagram.
    Framed,
    /// EdgeMesh's `udp`: raw bytes, one read is one datagram.
    Unframed,
}

/// Writes one datagram as `framing` wants it.
pub async fn write_datagram<W: AsyncWrite + Unpin>(
    w: &mut W,
    datagram: &[u8],
    framing: Framing,
) -> io::Result<()> {
    match framing {
        Framing::Framed => write_frame(w, datagram).await,
        Framing::Unframed => {
            w.write_all(datagram).await?;
            w.flush().await
        }
    }
}

/// Reads one datagram into `buf` (resized to fit it: its capacity grows to the largest
/// datagram seen); its length, or `None` at a clean end of stream.
pub async fn read_datagram<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    framing: Framing,
) -> io::Result<Option<usize>> {
    match framing {
        Framing::Framed => read_frame(r, buf).await,
        // One read is one datagram: it needs room for the largest.
        Framing::Unframed => match r.read(sized_for(buf, MAX_DATAGRAM)).await? {
            0 => Ok(None),
            n => Ok(Some(n)),
        },
    }
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, datagram: &[u8]) -> io::Result<()> {
    let len = u16::try_from(datagram.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "datagram over 65535 bytes"))?;
    let mut frame = Vec::with_capacity(2 + datagram.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(datagram);
    w.write_all(&frame).await
}

/// Reads one frame into `buf` (resized to the frame's length); returns that length, or `None`
/// at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<Option<usize>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::from(u16::from_be_bytes(len));
    r.read_exact(sized_for(buf, len)).await?;
    Ok(Some(len))
}

/// Remote side: relays frames from the stream to the connected `socket` and back, until the
/// flow has been silent both ways for `idle` or the stream closes.
pub(crate) async fn serve_remote<S>(stream: S, socket: UdpSocket, idle: Duration, framing: Framing)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let activity = Activity::new();
    let to_backend = async {
        let mut buf = Vec::new();
        while let Ok(Some(n)) = read_datagram(&mut rd, &mut buf, framing).await {
            activity.touch();
            // A refused or full socket drops this datagram; the flow goes on.
            let _ = socket.send(&buf[..n]).await;
        }
    };
    let to_client = async {
        loop {
            // An ICMP error (refused port) is reported on the next recv: the flow goes on.
            let Ok(datagram) = recv_datagram(&socket).await else {
                continue;
            };
            activity.touch();
            if write_datagram(&mut wr, &datagram, framing).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = to_backend => {}
        () = to_client => {}
        () = activity.idle_for(idle) => {}
    }
    let _ = wr.shutdown().await;
}

/// How long a flow must have been silent both ways to give its stream slot up to opens waiting
/// for one of its peer's slots ([`SlotPressure`]); the next datagram of its client opens a new
/// flow (in turn). Short, as the local proxy's eviction of the idlest flow is immediate: a
/// stream is worth more to a flow waiting for its first datagram than to one gone quiet.
pub(crate) const YIELD_IDLE: Duration = Duration::from_secs(2);

/// Local side of a tunnelled UDP flow: send and receive whole datagrams.
#[derive(Debug)]
pub struct UdpTunnel {
    tx: mpsc::Sender<Vec<u8>>,
    rx: Mutex<mpsc::Receiver<Vec<u8>>>,
    target: SocketAddr,
}

impl UdpTunnel {
    /// Relays the flow's datagrams over `stream` until the flow is dropped, the remote ends it,
    /// or (with `yielding`) it gives its stream slot up while idle.
    pub(crate) fn spawn<S>(
        stream: S,
        target: SocketAddr,
        framing: Framing,
        yielding: Option<Yielding>,
    ) -> UdpTunnel
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, mut out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let (in_tx, rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let (mut rd, mut wr) = tokio::io::split(stream);
        tokio::spawn(async move {
            let activity = Activity::new();
            let to_remote = async {
                while let Some(datagram) = out_rx.recv().await {
                    activity.touch();
                    if write_datagram(&mut wr, &datagram, framing).await.is_err() {
                        return;
                    }
                }
            };
            let from_remote = async {
                let mut buf = Vec::new();
                while let Ok(Some(n)) = read_datagram(&mut rd, &mut buf, framing).await {
                    activity.touch();
                    // Never wait on a slow reader: drop instead (the flow keeps going).
                    let _ = in_tx.try_send(buf[..n].to_vec());
                }
            };
            let yielded = async {
                match &yielding {
                    Some(yielding) => yielding.when_idle_and_wanted(&activity).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = to_remote => {}
                () = from_remote => {}
                () = yielded => {}
            }
            // Whichever ended the flow, the remote's end follows ours; `in_tx` dropped with
            // this task ends the flow for [`UdpTunnel::recv`].
            let _ = wr.shutdown().await;
        });
        UdpTunnel {
            tx,
            rx: Mutex::new(rx),
            target,
        }
    }

    /// The endpoint this flow reaches.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Queues one datagram; `false` when it was dropped (queue full or flow closed).
    pub fn send(&self, datagram: &[u8]) -> bool {
        self.tx.try_send(datagram.to_vec()).is_ok()
    }

    /// The next datagram from the endpoint; `None` once the flow has ended.
    pub async fn recv(&self) -> Option<Vec<u8>> {
        self.rx.lock().await.recv().await
    }
}

/// What lets a flow give its stream slot up: its peer's waiting opens, and where yields count
/// (`Shared::udp_flows_yielded`).
pub(crate) struct Yielding {
    pub pressure: Arc<SlotPressure>,
    pub yielded: Arc<AtomicU64>,
}

impl Yielding {
    /// Resolves when the flow has been idle for [`YIELD_IDLE`] while an open waits for a slot.
    /// Each turn waits for an open to wait, then for the flow to be idle: it ends or sleeps.
    async fn when_idle_and_wanted(&self, activity: &Activity) {
        loop {
            self.pressure.until_waiting().await;
            activity.idle_for(YIELD_IDLE).await;
            if self.pressure.any_waiting() {
                self.yielded.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_keep_datagram_boundaries() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let datagrams: Vec<Vec<u8>> = vec![vec![], vec![1], vec![7; 1400], vec![9; 65_535]];
        let sent = datagrams.clone();
        let writer = tokio::spawn(async move {
            for d in &sent {
                write_frame(&mut a, d).await.unwrap();
            }
        });
        let mut buf = vec![0u8; MAX_DATAGRAM];
        for want in &datagrams {
            let n = read_frame(&mut b, &mut buf).await.unwrap().unwrap();
            assert_eq!(&buf[..n], &want[..]);
        }
        writer.await.unwrap();
        assert_eq!(read_frame(&mut b, &mut buf).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_oversized_datagram_is_refused() {
        let (mut a, _b) = tokio::io::duplex(16);
        let err = write_frame(&mut a, &vec![0u8; 70_000]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// A flow keeps its stream however long it is idle while no open waits for a slot; once one
    /// waits, the flow ends after 2 s of silence (and counts), and the remote sees the end.
    #[tokio::test(start_paused = true)]
    async fn an_idle_flow_gives_its_slot_up_only_while_opens_wait() {
        let (local, mut remote) = tokio::io::duplex(1 << 16);
        let pressure = Arc::new(SlotPressure::default());
        let yielded = Arc::new(AtomicU64::new(0));
        let yielding = Yielding {
            pressure: Arc::clone(&pressure),
            yielded: Arc::clone(&yielded),
        };
        let target = SocketAddr::from(([192, 0, 2, 1], 53));
        let flow = UdpTunnel::spawn(local, target, Framing::Framed, Some(yielding));
        assert!(flow.send(b"query"));
        let mut buf = Vec::new();
        let n = read_frame(&mut remote, &mut buf).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"query");

        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(
            flow.send(b"still here"),
            "the flow ended with no open waiting"
        );
        read_frame(&mut remote, &mut buf).await.unwrap().unwrap();

        let waiting = pressure.wait();
        tokio::time::sleep(Duration::from_millis(1900)).await;
        assert_eq!(
            yielded.load(Ordering::Relaxed),
            0,
            "yielded before 2 s of silence"
        );
        let ended = tokio::time::timeout(Duration::from_secs(1), flow.recv()).await;
        assert_eq!(
            ended,
            Ok(None),
            "the flow must end once idle for 2 s while an open waits"
        );
        assert_eq!(yielded.load(Ordering::Relaxed), 1);
        assert_eq!(read_frame(&mut remote, &mut buf).await.unwrap(), None);
        drop(waiting);
    }

    /// 100,000 datagrams through one framed flow to a real UDP echo server on loopback: no
    /// stall, and (on loopback, paced by the echo) no loss beyond a bounded few.
    #[tokio::test]
    async fn a_hundred_thousand_datagrams_do_not_stall() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let (local, remote) = tokio::io::duplex(1 << 20);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(echo_addr).await.unwrap();
        tokio::spawn(serve_remote(
            remote,
            socket,
            Duration::from_secs(5),
            Framing::Framed,
        ));
        let flow = UdpTunnel::spawn(local, echo_addr, Framing::Framed, None);
        let total = 100_000u32;
        let mut received = 0u32;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for i in 0..total {
            while !flow.send(&i.to_be_bytes()) {
                tokio::task::yield_now().await;
            }
            // Keep at most a window in flight so the echo's socket buffer is not the limit.
            if i % 64 == 63 {
                while received + 256 < i {
                    let got = tokio::time::timeout_at(deadline, flow.recv()).await;
                    if matches!(got, Ok(Some(_))) {
                        received += 1
                    } else {
                        break;
                    }
                }
            }
        }
        while received < total {
            match tokio::time::timeout(Duration::from_secs(2), flow.recv()).await {
                Ok(Some(_)) => received += 1,
                _ => break,
            }
        }
        let lost = total - received;
        assert!(lost <= total / 100, "lost {lost} of {total} datagrams");
    }
}
