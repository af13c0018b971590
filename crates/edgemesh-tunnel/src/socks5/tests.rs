use std::net::{IpAddr, SocketAddr};

use edgemesh_model::{NodeAddress, NodeSpec, Snapshot};

use super::*;

fn snapshot() -> Snapshot {
    let mut s = Snapshot::default();
    let node = |name: &str, addrs: &[(&str, &str)]| NodeSpec {
        name: name.into(),
        addresses: addrs
            .iter()
            .map(|(kind, ip)| NodeAddress {
                kind: (*kind).into(),
                ip: ip.parse().unwrap(),
            })
            .collect(),
        ..NodeSpec::default()
    };
    for n in [
        node(
            "edge-1",
            &[("ExternalIP", "203.0.113.5"), ("InternalIP", "192.0.2.10")],
        ),
        node("edge-2", &[("ExternalIP", "198.51.100.7")]),
        node("bare", &[]),
    ] {
        s.nodes.insert(n.name.clone(), n);
    }
    s
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn resolve_table() {
    let snap = snapshot();
    let name = |n: &str, p| Destination::Name(n.into(), p);
    let ip = |s: &str| Destination::Ip(sa(s));
    let target = |node: &str, addr: &str| {
        Ok(NodeTarget {
            node: node.into(),
            addr: sa(addr),
        })
    };
    let cases: Vec<(Destination, Result<NodeTarget, Reply>)> = vec![
        // By name: the InternalIP is preferred over an ExternalIP listed first.
        (name("edge-1", 22), target("edge-1", "192.0.2.10:22")),
        // No InternalIP: the first address.
        (name("edge-2", 22), target("edge-2", "198.51.100.7:22")),
        (name("bare", 22), Err(Reply::HostUnreachable)),
        (name("nobody", 22), Err(Reply::HostUnreachable)),
        // By any address of a node, dialled as given.
        (ip("203.0.113.5:2222"), target("edge-1", "203.0.113.5:2222")),
        (ip("192.0.2.10:22"), target("edge-1", "192.0.2.10:22")),
        // Not a node: never an open proxy.
        (ip("192.0.2.99:22"), Err(Reply::NotAllowed)),
        (ip("[2001:db8::1]:22"), Err(Reply::NotAllowed)),
    ];
    for (dest, want) in cases {
        assert_eq!(resolve(&snap, &dest), want, "{dest:?}");
    }
}

async fn request(bytes: &[u8]) -> std::io::Result<Result<Destination, Reply>> {
    let mut r = bytes;
    read_request(&mut r).await
}

#[tokio::test]
async fn request_table() {
    // `None`: an I/O error (the connection is dropped without a reply).
    type Case<'a> = (&'a [u8], Option<Result<Destination, Reply>>);
    let cases: Vec<Case> = vec![
        (
            &[5, 1, 0, 1, 192, 0, 2, 10, 0, 22],
            Some(Ok(Destination::Ip(sa("192.0.2.10:22")))),
        ),
        (
            &[
                5, 1, 0, 3, 6, b'E', b'd', b'g', b'e', b'-', b'1', 0x1f, 0x90,
            ],
            Some(Ok(Destination::Name("edge-1".into(), 8080))),
        ),
        // A trailing dot is the same name.
        (
            &[5, 1, 0, 3, 3, b'a', b'1', b'.', 0, 22],
            Some(Ok(Destination::Name("a1".into(), 22))),
        ),
        // An IP literal sent as a domain name.
        (
            &[
                5, 1, 0, 3, 8, b'1', b'0', b'.', b'0', b'.', b'0', b'.', b'1', 0, 80,
            ],
            Some(Ok(Destination::Ip(sa("10.0.0.1:80")))),
        ),
        (
            &[
                5, 1, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22,
            ],
            Some(Ok(Destination::Ip(SocketAddr::new(
                "2001:db8::1".parse::<IpAddr>().unwrap(),
                22,
            )))),
        ),
        // BIND and UDP ASSOCIATE are not supported.
        (
            &[5, 2, 0, 1, 192, 0, 2, 10, 0, 22],
            Some(Err(Reply::CommandNotSupported)),
        ),
        (
            &[5, 3, 0, 1, 192, 0, 2, 10, 0, 22],
            Some(Err(Reply::CommandNotSupported)),
        ),
        (&[5, 1, 0, 9], Some(Err(Reply::AddressTypeNotSupported))),
        // Not UTF-8.
        (
            &[5, 1, 0, 3, 1, 0xff, 0, 22],
            Some(Err(Reply::HostUnreachable)),
        ),
        // I/O errors: wrong version, truncated.
        (&[4, 1, 0, 1, 1, 2, 3, 4, 0, 1], None),
        (&[5, 1, 0, 1, 192, 0], None),
        (&[], None),
    ];
    for (bytes, want) in cases {
        let got = request(bytes).await;
        match want {
            Some(want) => assert_eq!(got.ok(), Some(want), "{bytes:?}"),
            None => assert!(got.is_err(), "{bytes:?} should be an I/O error"),
        }
    }
}

#[tokio::test]
async fn negotiation_refuses_clients_without_no_auth() {
    let (mut client, mut server) = tokio::io::duplex(64);
    let serve = tokio::spawn(async move { negotiate(&mut server).await.is_err() });
    client.write_all(&[5, 1, 2]).await.unwrap(); // username/password only
    let mut answer = [0u8; 2];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer, [5, 0xff]);
    assert!(serve.await.unwrap());
}

#[tokio::test]
async fn negotiation_then_request() {
    let (mut client, mut server) = tokio::io::duplex(64);
    let serve = tokio::spawn(async move { negotiate(&mut server).await });
    client.write_all(&[5, 2, 2, 0]).await.unwrap();
    let mut answer = [0u8; 2];
    client.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer, [5, 0]);
    client
        .write_all(&[5, 1, 0, 3, 2, b'b', b'1', 0, 22])
        .await
        .unwrap();
    let got = serve.await.unwrap().unwrap();
    assert_eq!(got, Ok(Destination::Name("b1".into(), 22)));
}

#[test]
fn errors_map_to_socks_replies() {
    let refused = TunnelError::Refused {
        node: "n".into(),
        target: "tcp 192.0.2.1:22".into(),
        reason: "connection refused by 192.0.2.1:22 on node n".into(),
    };
    assert_eq!(reply_for(&refused), Reply::ConnectionRefused);
    assert_eq!(
        reply_for(&TunnelError::UnknownNode("n".into())),
        Reply::HostUnreachable
    );
    assert_eq!(reply_for(&TunnelError::Stopped), Reply::GeneralFailure);
}
