//! One nf_tables transaction sent over netlink: the caller builds the batch (begin, messages,
//! end) as `nft` would; this sends it in one `sendmsg` (the kernel commits a batch only when it
//! arrives whole, all or nothing) and reads one acknowledgement per message that asked for one.
//! `nft -f` spends ~6 µs and ~2 KB per set element parsing text (300,000 elements: 2–3 s and
//! 600 MB); the same elements as bytes cost the kernel's insert only.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use netlink_sys::Socket;
use netlink_sys::constants::NETLINK_NETFILTER;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use super::NetError;

/// `NLMSG_ERROR`: an acknowledgement (error 0) or the error of one message.
const NLMSG_ERROR: u16 = 2;
/// Bytes of `struct nlmsghdr`.
const HEADER_LEN: usize = 16;
/// How long the kernel may take to answer; it answers within the `sendmsg` in practice.
const REPLY_WAIT: Duration = Duration::from_secs(30);

/// Sends `batch` in the calling thread's network namespace and waits for `acks`
/// acknowledgements; the first error the kernel reports is returned (the batch was not applied).
pub fn nftables_transaction(batch: &[u8], acks: usize) -> Result<(), NetError> {
    let failed = |error: io::Error| NetError::Nftables { error };
    let socket = open(batch.len(), acks).map_err(failed)?;
    let sent = socket.send(batch, 0).map_err(failed)?;
    if sent != batch.len() {
        return Err(failed(io::Error::other(format!(
            "sent {sent} of {} bytes",
            batch.len()
        ))));
    }
    read_acks(&socket, acks).map_err(failed)
}

/// Receive-buffer room per acknowledgement: its socket buffer's true size, not its 36 bytes.
const ACK_ROOM: usize = 2048;

fn open(batch_len: usize, acks: usize) -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    // The whole batch goes in one datagram; the default send buffer (~200 KB) holds ~5,000
    // elements. Forcing the size needs CAP_NET_ADMIN, which changing nftables needs anyway.
    setsockopt(
        &socket.as_fd(),
        sockopt::SndBufForce,
        &(batch_len + 64 * 1024),
    )
    .map_err(io::Error::from)?;
    // The kernel queues every acknowledgement within the `sendmsg`, before we read any: the
    // default receive buffer (~200 KB) overflows at ~250 of them (ENOBUFS, 500,000 elements).
    setsockopt(
        &socket.as_fd(),
        sockopt::RcvBufForce,
        &((acks + 32) * ACK_ROOM),
    )
    .map_err(io::Error::from)?;
    // Acknowledgements without a copy of the (up to 64 KB) message they answer.
    socket.set_cap_ack(true)?;
    setsockopt(
        &socket.as_fd(),
        sockopt::ReceiveTimeout,
        &TimeVal::new(REPLY_WAIT.as_secs() as _, 0),
    )
    .map_err(io::Error::from)?;
    Ok(socket)
}

fn read_acks(socket: &Socket, acks: usize) -> io::Result<()> {
    let mut acked = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    while acked < acks {
        buf.clear();
        socket
            .recv(&mut buf, 0)
            .map_err(|error| match error.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the kernel acknowledged {acked} of {acks} messages within {REPLY_WAIT:?}"
                    ),
                ),
                _ => error,
            })?;
        acked += count_acks(&buf)?;
    }
    Ok(())
}

/// The acknowledgements in one datagram of replies, or the first error among them.
fn count_acks(mut replies: &[u8]) -> io::Result<usize> {
    let mut acks = 0;
    while replies.len() >= HEADER_LEN {
        let len = u32_at(replies, 0) as usize;
        let kind = u16::from_ne_bytes([replies[4], replies[5]]);
        if len < HEADER_LEN || len > replies.len() {
            return Err(io::Error::other(format!(
                "malformed netlink reply ({len} bytes)"
            )));
        }
        if kind == NLMSG_ERROR && len >= HEADER_LEN + 4 {
            match i32::from_ne_bytes(replies[16..20].try_into().unwrap_or_default()) {
                0 => acks += 1,
                errno => return Err(io::Error::from_raw_os_error(-errno)),
            }
        }
        replies = &replies[len.next_multiple_of(4).min(replies.len())..];
    }
    Ok(acks)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: u16, errno: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&errno.to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    #[test]
    fn acks_are_counted_and_an_error_is_returned_as_the_kernel_gave_it() {
        let two = [reply(NLMSG_ERROR, 0), reply(NLMSG_ERROR, 0)].concat();
        assert_eq!(count_acks(&two).unwrap(), 2);
        let refused = [reply(NLMSG_ERROR, 0), reply(NLMSG_ERROR, -2)].concat();
        let error = count_acks(&refused).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(2), "{error}");
        assert!(
            count_acks(&reply(NLMSG_ERROR, 0)[..20]).is_err(),
            "truncated"
        );
        assert_eq!(count_acks(&[]).unwrap(), 0);
    }
}
