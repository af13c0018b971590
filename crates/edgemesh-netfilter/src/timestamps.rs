//! `modules.edgeProxy.monotonicTcpTimestamps`: `net.ipv4.tcp_timestamps = 2` in the agent's
//! network namespace.
//!
//! Why: Linux gives every connection a TCP timestamp offset hashed from its addresses and ports
//! as the client sees them. A connection DNATed from a ClusterIP reaches the backend on the same
//! 4-tuple as an earlier direct connection from the same port (or one masquerade moved there),
//! but with timestamps from another offset. When the backend still holds that 4-tuple in
//! TIME_WAIT (it closed first, 60 s), half of such SYNs carry an older timestamp: PAWS rejects
//! them (`TcpExtPAWSTimewait` on the backend), the client resets, and retries after 1 s. With
//! the value 2 every connection of this namespace stamps the same clock, so the SYN is always
//! newer and TIME_WAIT hands the 4-tuple over (RFC 6191). The cost: peers can read this host's
//! timestamp clock (uptime) again, as before Linux 4.10; hence opt-in.

use crate::error::{NetfilterError, Result};

/// This thread's network namespace's `net.ipv4.tcp_timestamps`.
pub const TCP_TIMESTAMPS: &str = "/proc/sys/net/ipv4/tcp_timestamps";

/// Timestamps on, without per-connection offsets.
const MONOTONIC: &str = "2";

/// What [`make_monotonic`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    /// Was 1 (per-connection offsets), now 2.
    Changed,
    /// Already 2.
    AlreadyMonotonic,
    /// 0: someone turned timestamps off; left alone (no PAWS, nothing to fix here).
    Disabled,
}

/// Sets `net.ipv4.tcp_timestamps` to 2 unless it is 0 (timestamps off stays the operator's
/// choice). Applies to the network namespace of the calling thread.
pub fn make_monotonic() -> Result<Timestamps> {
    let sysctl = |error| NetfilterError::Sysctl {
        path: TCP_TIMESTAMPS,
        error,
    };
    let value = std::fs::read_to_string(TCP_TIMESTAMPS).map_err(sysctl)?;
    match value.trim() {
        "0" => Ok(Timestamps::Disabled),
        MONOTONIC => Ok(Timestamps::AlreadyMonotonic),
        "1" => {
            std::fs::write(TCP_TIMESTAMPS, MONOTONIC).map_err(sysctl)?;
            Ok(Timestamps::Changed)
        }
        other => Err(NetfilterError::SysctlValue {
            path: TCP_TIMESTAMPS,
            value: other.to_string(),
        }),
    }
}
