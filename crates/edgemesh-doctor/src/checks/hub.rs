//! The edge hub, when one is in use: online, offline serving its cache, or offline and empty.
//!
//! The hub's `/readyz` says which (`ready: online: ...`, `ready: offline: serving N cached
//! objects ...`, 503 `not ready: offline and nothing cached ...`); it does not tell the cache's
//! age, so neither does this check.

use std::net::SocketAddr;

use crate::gather::Fetched;
use crate::report::Finding;

const CHECK: &str = "hub";

pub fn status(addr: Option<SocketAddr>, readyz: Option<&Fetched>) -> Finding {
    let (Some(addr), Some(readyz)) = (addr, readyz) else {
        return Finding::skip(
            CHECK,
            "no edge hub (modules.edgeProxy.edgeHubAddress unset, no --hub-admin-addr)",
        );
    };
    let upstream_fix = format!(
        "the hub cannot reach any --server-addr: check the cloud link and the apiserver; curl {addr}/debug/hub shows each upstream's health"
    );
    match readyz {
        Ok((200, body)) if body.contains("offline") => Finding::warn(
            CHECK,
            format!("offline, serving from its cache: {}", body.trim()),
            format!(
                "reads are served from the cache, writes fail until the cloud returns; {upstream_fix}"
            ),
        ),
        Ok((200, body)) => Finding::pass(CHECK, body.trim().to_owned()),
        Ok((status, body)) => Finding::fail(
            CHECK,
            format!("/readyz {status}: {}", body.trim()),
            upstream_fix,
        ),
        Err(e) => Finding::fail(
            CHECK,
            format!("the hub's admin endpoint does not answer: {e}"),
            "start the hub (edgemesh hub), or pass its admin address with --hub-admin-addr",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn online_offline_with_cache_offline_empty_down_and_none() {
        let addr = Some("127.0.0.1:10267".parse().unwrap());
        let online = Ok((
            200,
            "ready: online: forwarding to https://192.0.2.1:6443\n".to_owned(),
        ));
        assert_eq!(status(addr, Some(&online)).status, Status::Pass);
        let cached = Ok((
            200,
            "ready: offline: serving 12 cached objects until an upstream is healthy again\n"
                .to_owned(),
        ));
        let f = status(addr, Some(&cached));
        assert_eq!(f.status, Status::Warn);
        assert!(f.message.contains("12 cached objects"));
        let empty = Ok((
            503,
            "not ready: offline and nothing cached: ...\n".to_owned(),
        ));
        assert_eq!(status(addr, Some(&empty)).status, Status::Fail);
        assert_eq!(
            status(addr, Some(&Err("refused".into()))).status,
            Status::Fail
        );
        assert_eq!(status(None, None).status, Status::Skip);
    }
}
