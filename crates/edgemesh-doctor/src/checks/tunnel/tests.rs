use super::*;
use crate::checks::tests::plan;
use crate::report::Status;

fn probe(ok: bool) -> RelayProbe {
    RelayProbe {
        node_name: "relay-1".into(),
        addr: "192.0.2.1:20006".parse().unwrap(),
        result: if ok {
            Ok(())
        } else {
            Err("Connection refused (os error 111)".into())
        },
    }
}

const RELAY_PEER: &str = r#"[{"peerId": "12D3KooWA", "nodeName": "relay-1", "path": "direct", "transport": "tcp", "addresses": [], "isRelay": true, "streamsOpen": 0, "streamsTotal": 0, "bytesSent": 0, "bytesReceived": 0}]"#;

#[test]
fn psk_present_empty_missing_disabled_off() {
    let p = plan();
    let t = p.tunnel.as_ref();
    assert_eq!(psk(t, Some(&Ok(44))).status, Status::Pass);
    assert_eq!(psk(t, Some(&Ok(0))).status, Status::Fail);
    let missing = psk(
        t,
        Some(&Err("cannot read /etc/edgemesh/psk: No such file".into())),
    );
    assert_eq!(missing.status, Status::Fail);
    assert!(missing.fix.contains("/etc/edgemesh/psk"));
    let mut off = p.tunnel.clone().unwrap();
    off.psk_path = None;
    assert_eq!(psk(Some(&off), None).status, Status::Warn);
    assert_eq!(psk(None, None).status, Status::Skip);
}

#[test]
fn relays_reachable_unreachable_none_self() {
    let p = plan();
    let t = p.tunnel.as_ref();
    let ok = relays(t, "edge-1", &[probe(false), probe(true)]);
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].status, Status::Pass);
    assert_eq!(ok[0].check, "tunnel.relay relay-1");
    let down = relays(t, "edge-1", &[probe(false)]);
    assert_eq!(down[0].status, Status::Fail);
    assert!(down[0].message.contains("192.0.2.1:20006"));
    assert_eq!(relays(t, "relay-1", &[])[0].status, Status::Skip);
    let mut none = p.tunnel.clone().unwrap();
    none.relays.clear();
    assert_eq!(relays(Some(&none), "edge-1", &[])[0].status, Status::Skip);
    assert!(relays(None, "edge-1", &[]).is_empty());
}

#[test]
fn connected_to_the_relay_passes() {
    let p = plan();
    let f = peers(
        p.tunnel.as_ref(),
        "edge-1",
        &Ok((200, RELAY_PEER.into())),
        &[probe(true)],
        None,
    );
    assert_eq!(f.status, Status::Pass, "{f:?}");
    assert!(f.message.contains("relay-1 (direct)"));
}

#[test]
fn no_relay_connected_tells_wrong_psk_from_unreachable() {
    let p = plan();
    let t = p.tunnel.as_ref();
    let empty = Ok((200, "[]".to_owned()));
    let psk = peers(t, "edge-1", &empty, &[probe(true)], None);
    assert_eq!(psk.status, Status::Fail);
    assert!(psk.message.contains("wrong PSK"), "{psk:?}");
    assert!(psk.message.contains("accepts TCP"), "{psk:?}");
    let counted = peers(t, "edge-1", &empty, &[probe(false)], Some(4));
    assert_eq!(counted.status, Status::Fail);
    assert!(
        counted
            .message
            .contains("4 tunnel handshakes failed: wrong PSK"),
        "{counted:?}"
    );
    let unreachable = peers(t, "edge-1", &empty, &[probe(false)], None);
    assert_eq!(unreachable.status, Status::Fail);
    assert!(
        unreachable.message.contains("relay unreachable"),
        "{unreachable:?}"
    );
}

#[test]
fn without_relays_no_peer_only_warns() {
    let p = plan();
    let mut t = p.tunnel.clone().unwrap();
    t.relays.clear();
    let f = peers(Some(&t), "edge-1", &Ok((200, "[]".into())), &[], None);
    assert_eq!(f.status, Status::Warn);
}

#[test]
fn tunnel_off_in_the_agent_garbage_and_no_agent() {
    let p = plan();
    let t = p.tunnel.as_ref();
    assert_eq!(
        peers(t, "edge-1", &Ok((404, "off".into())), &[], None).status,
        Status::Fail
    );
    assert_eq!(
        peers(t, "edge-1", &Ok((200, "{\"error\": 1}".into())), &[], None).status,
        Status::Warn
    );
    assert_eq!(
        peers(t, "edge-1", &Ok((500, "x".into())), &[], None).status,
        Status::Warn
    );
    assert_eq!(
        peers(t, "edge-1", &Err("refused".into()), &[], None).status,
        Status::Skip
    );
    assert_eq!(
        peers(None, "edge-1", &Err("refused".into()), &[], None).status,
        Status::Skip
    );
}
