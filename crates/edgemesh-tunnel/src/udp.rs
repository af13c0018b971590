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
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::UdpSocket;
use tokio::sync::{Mutex, mpsc};

pub use edgemesh_copy::datagram::MAX_DATAGRAM;
use edgemesh_copy::datagram::{recv_datagram, sized_for};
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
    let last = std::sync::Mutex::new(Instant::now());
    let touch = || {
        *last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now()
    };
    let to_backend = async {
        let mut buf = Vec::new();
        while let Ok(Some(n)) = read_datagram(&mut rd, &mut buf, framing).await {
            touch();
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
            touch();
            if write_datagram(&mut wr, &datagram, framing).await.is_err() {
                return;
            }
        }
    };
    let expiry = async {
        loop {
            let since = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .elapsed();
            if since >= idle {
                return;
            }
            tokio::time::sleep(idle - since).await;
        }
    };
    tokio::select! {
        () = to_backend => {}
        () = to_client => {}
        () = expiry => {}
    }
    let _ = wr.shutdown().await;
}

/// Local side of a tunnelled UDP flow: send and receive whole datagrams.
#[derive(Debug)]
pub struct UdpTunnel {
    tx: mpsc::Sender<Vec<u8>>,
    rx: Mutex<mpsc::Receiver<Vec<u8>>>,
    target: SocketAddr,
}

impl UdpTunnel {
    pub(crate) fn spawn<S>(stream: S, target: SocketAddr, framing: Framing) -> UdpTunnel
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, mut out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let (in_tx, rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let (mut rd, mut wr) = tokio::io::split(stream);
        tokio::spawn(async move {
            while let Some(datagram) = out_rx.recv().await {
                if write_datagram(&mut wr, &datagram, framing).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok(Some(n)) = read_datagram(&mut rd, &mut buf, framing).await {
                // Never wait on a slow reader: drop instead (the flow keeps going).
                let _ = in_tx.try_send(buf[..n].to_vec());
            }
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
        let flow = UdpTunnel::spawn(local, echo_addr, Framing::Framed);
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
