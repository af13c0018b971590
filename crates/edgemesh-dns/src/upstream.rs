//! Forwarding to upstream servers: UDP first, TCP when the UDP answer is truncated.
//!
//! Every exchange is bounded by one deadline for the whole query, so a dead upstream costs at
//! most `timeout` before the caller falls back to the stale cache or SERVFAIL.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_host::SocketFactory;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

/// The EDNS buffer size we advertise upstream (the DNS flag day 2020 value).
const UPSTREAM_UDP_PAYLOAD: u16 = 1232;
/// Largest UDP datagram we read from an upstream.
const MAX_UDP_RESPONSE: usize = 4096;

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("no upstream DNS server configured")]
    NoUpstreams,
    #[error("too many upstream queries in flight")]
    Busy,
    #[error("no upstream DNS server answered within {0:?}")]
    Timeout(Duration),
    #[error("upstream {upstream}: {error}")]
    Io {
        upstream: SocketAddr,
        error: io::Error,
    },
    #[error("upstream {upstream} sent an unusable answer: {reason}")]
    BadAnswer {
        upstream: SocketAddr,
        reason: String,
    },
}

/// Outcome of one successful exchange.
#[derive(Debug)]
pub struct Exchange {
    pub message: Message,
    /// The UDP answer was truncated and the query was repeated over TCP.
    pub retried_over_tcp: bool,
}

/// Upstream servers tried in order within one deadline.
#[derive(Clone, Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    sockets: Arc<dyn SocketFactory>,
}

impl Forwarder {
    pub fn new(
        upstreams: Vec<SocketAddr>,
        timeout: Duration,
        sockets: Arc<dyn SocketFactory>,
    ) -> Self {
        Self {
            upstreams,
            timeout,
            sockets,
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Asks the upstreams in turn until one gives a usable answer (SERVFAIL and REFUSED count
    /// as unusable). Returns the last error when none does.
    pub async fn forward(
        &self,
        query: &Query,
        recursion_desired: bool,
    ) -> Result<Exchange, UpstreamError> {
        let deadline = Instant::now() + self.timeout;
        let mut last = UpstreamError::NoUpstreams;
        for (i, upstream) in self.upstreams.iter().enumerate() {
            // Leave later upstreams a fair share of the remaining time.
            let left = deadline.saturating_duration_since(Instant::now());
            let share = left / u32::try_from(self.upstreams.len() - i).unwrap_or(1);
            let attempt = exchange(
                &*self.sockets,
                *upstream,
                query,
                recursion_desired,
                Instant::now() + share,
            );
            match timeout_at(deadline, attempt).await {
                Ok(Ok(exchange)) => return Ok(exchange),
                Ok(Err(error)) => last = error,
                Err(_) => return Err(UpstreamError::Timeout(self.timeout)),
            }
        }
        Err(last)
    }
}

async fn exchange(
    sockets: &dyn SocketFactory,
    upstream: SocketAddr,
    query: &Query,
    recursion_desired: bool,
    deadline: Instant,
) -> Result<Exchange, UpstreamError> {
    let request = request_for(query, recursion_desired);
    let bytes = request.to_vec().map_err(|e| bad(upstream, e.to_string()))?;
    let io = |source| UpstreamError::Io {
        upstream,
        error: source,
    };
    let timed_out = || UpstreamError::Timeout(deadline.saturating_duration_since(Instant::now()));
    let udp = timeout_at(deadline, udp_exchange(sockets, upstream, &bytes, &request))
        .await
        .map_err(|_| timed_out())?
        .map_err(io)?;
    let message = check(upstream, &request, udp)?;
    if !message.metadata.truncation {
        return usable(upstream, message, false);
    }
    let tcp = timeout_at(deadline, tcp_exchange(sockets, upstream, &bytes))
        .await
        .map_err(|_| timed_out())?
        .map_err(io)?;
    usable(upstream, check(upstream, &request, tcp)?, true)
}

fn request_for(query: &Query, recursion_desired: bool) -> Message {
    let mut request = Message::query();
    request.metadata.recursion_desired = recursion_desired;
    request.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_UDP_PAYLOAD);
    request.set_edns(edns);
    request
}

/// Sends from a fresh ephemeral port (random per query) and waits for the datagram that
/// matches our id; anything else arriving on the socket is ignored until the deadline.
async fn udp_exchange(
    sockets: &dyn SocketFactory,
    upstream: SocketAddr,
    bytes: &[u8],
    request: &Message,
) -> io::Result<Vec<u8>> {
    let socket = sockets.udp_connect(upstream)?;
    socket.send(bytes).await?;
    let mut buf = vec![0u8; MAX_UDP_RESPONSE];
    loop {
        let n = socket.recv(&mut buf).await?;
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == request.metadata.id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(
    sockets: &dyn SocketFactory,
    upstream: SocketAddr,
    bytes: &[u8],
) -> io::Result<Vec<u8>> {
    let mut stream = edgemesh_host::connect(sockets, upstream).await?;
    let len = u16::try_from(bytes.len()).map_err(|_| io::Error::other("query too long"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    let answer_len = stream.read_u16().await?;
    let mut answer = vec![0u8; usize::from(answer_len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// The answer must be a response to our id and our question.
fn check(
    upstream: SocketAddr,
    request: &Message,
    bytes: Vec<u8>,
) -> Result<Message, UpstreamError> {
    let message = Message::from_vec(&bytes).map_err(|e| bad(upstream, e.to_string()))?;
    if message.metadata.message_type != MessageType::Response
        || message.metadata.id != request.metadata.id
    {
        return Err(bad(upstream, "not a response to our query".into()));
    }
    if message.queries != request.queries {
        return Err(bad(upstream, "answer is for another question".into()));
    }
    Ok(message)
}

fn usable(
    upstream: SocketAddr,
    message: Message,
    retried_over_tcp: bool,
) -> Result<Exchange, UpstreamError> {
    use hickory_proto::op::ResponseCode::{Refused, ServFail};
    match message.metadata.response_code {
        code @ (ServFail | Refused) => Err(bad(upstream, format!("answered {code}"))),
        _ => Ok(Exchange {
            message,
            retried_over_tcp,
        }),
    }
}

fn bad(upstream: SocketAddr, reason: String) -> UpstreamError {
    UpstreamError::BadAnswer { upstream, reason }
}
