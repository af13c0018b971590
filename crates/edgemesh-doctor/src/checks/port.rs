//! The proxy's listen port inside Linux's ephemeral range: a connection made before the agent
//! starts may be given it as source port, and the agent cannot bind it.

use crate::report::Finding;

const CHECK: &str = "proxy.port";

pub fn ephemeral(
    port: Option<u16>,
    range: &Result<String, String>,
    reserved: &Result<String, String>,
) -> Finding {
    let Some(port) = port else {
        return Finding::skip(CHECK, "modules.edgeProxy is off");
    };
    let range = match range.as_deref().map(parse_range) {
        Ok(Some(range)) => range,
        Ok(None) => return Finding::warn(CHECK, "cannot parse net.ipv4.ip_local_port_range", ""),
        Err(e) => return Finding::warn(CHECK, e.clone(), "run edgemesh doctor on the node itself"),
    };
    let (low, high) = range;
    if !(low..=high).contains(&port) {
        return Finding::pass(
            CHECK,
            format!("listen port {port} is outside the ephemeral range {low}-{high}"),
        );
    }
    if reserved.as_deref().is_ok_and(|r| is_reserved(r, port)) {
        return Finding::pass(
            CHECK,
            format!(
                "listen port {port} is in the ephemeral range {low}-{high} but reserved (ip_local_reserved_ports)"
            ),
        );
    }
    Finding::warn(
        CHECK,
        format!(
            "listen port {port} is inside net.ipv4.ip_local_port_range {low}-{high}: an outgoing connection may take it and the agent then cannot listen (\"cannot listen on the transparent proxy port\")"
        ),
        format!(
            "sysctl -w net.ipv4.ip_local_reserved_ports={port} (persist it in /etc/sysctl.d/), or move modules.edgeProxy.listenPort below {low}"
        ),
    )
}

/// `"32768\t60999\n"` → (32768, 60999).
fn parse_range(text: &str) -> Option<(u16, u16)> {
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    match (parts.next(), parts.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => Some((low, high)),
        _ => None,
    }
}

/// `ip_local_reserved_ports`: `"8080,40000-40010\n"`; anything unparsable is not a reservation.
fn is_reserved(text: &str, port: u16) -> bool {
    text.trim().split(',').any(|item| {
        let item = item.trim();
        match item.split_once('-') {
            Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => (a..=b).contains(&port),
                _ => false,
            },
            None => item.parse::<u16>() == Ok(port),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn ok(s: &str) -> Result<String, String> {
        Ok(s.to_owned())
    }

    #[test]
    fn port_against_the_range_and_the_reservations() {
        let linux = ok("32768\t60999\n");
        let cases = [
            (40001, &linux, ok("\n"), Status::Warn),
            (40001, &linux, ok("8080,40000-40010\n"), Status::Pass),
            (40001, &linux, ok("40001\n"), Status::Pass),
            (40001, &linux, ok("garbage,-,1-\n"), Status::Warn),
            (40001, &linux, Err("unreadable".into()), Status::Warn),
            (30001, &linux, ok(""), Status::Pass),
            (60999, &linux, ok(""), Status::Warn),
            (61000, &linux, ok(""), Status::Pass),
        ];
        for (port, range, reserved, want) in cases {
            let f = ephemeral(Some(port), range, &reserved);
            assert_eq!(f.status, want, "{port} {reserved:?}: {f:?}");
        }
        let warn = ephemeral(Some(40001), &linux, &ok(""));
        assert!(
            warn.fix.contains("ip_local_reserved_ports=40001"),
            "{warn:?}"
        );
    }

    #[test]
    fn bad_or_missing_range_warns_and_no_proxy_skips() {
        assert_eq!(ephemeral(Some(1), &ok("x y"), &ok("")).status, Status::Warn);
        assert_eq!(ephemeral(Some(1), &ok("9 3"), &ok("")).status, Status::Warn);
        assert_eq!(
            ephemeral(Some(1), &Err("e".into()), &ok("")).status,
            Status::Warn
        );
        assert_eq!(ephemeral(None, &ok("1 2"), &ok("")).status, Status::Skip);
    }
}
