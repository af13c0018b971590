//! Bad input through the same parse → handler path the server runs: FORMERR, NOTIMP or
//! silence, never a panic or a hang; and a property test over arbitrary bytes.

// Test helpers below panic on failure on purpose: that is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_dns::{DnsConfig, DnsHandler, DnsMetrics, Protocol, Resolver, handle_packet};
use edgemesh_model::SnapshotCell;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use proptest::prelude::*;
use support::*;

fn handler() -> DnsHandler {
    let cell = Arc::new(SnapshotCell::new(snapshot(3, 1)));
    let config = DnsConfig::default(); // no upstreams: forwarding fails at once
    DnsHandler::new(Resolver::new(&config, cell, Arc::new(DnsMetrics::default())).unwrap())
}

fn src() -> SocketAddr {
    "192.0.2.10:5353".parse().unwrap()
}

fn run(raw: &[u8]) -> Option<Message> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handler = handler();
    let bytes = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(3),
            handle_packet(&handler, raw, src(), Protocol::Udp),
        )
        .await
        .expect("handler hung")
    })?;
    Some(Message::from_vec(&bytes).expect("our own answer must parse"))
}

fn rcode(raw: &[u8]) -> ResponseCode {
    run(raw).expect("expected an answer").metadata.response_code
}

fn good() -> Message {
    query_message("web.ns.svc.cluster.local.", RecordType::A, false)
}

#[test]
fn a_good_query_goes_through_the_bytes_path() {
    let answer = run(&good().to_vec().unwrap()).unwrap();
    assert_eq!(addresses(&answer), vec!["10.96.0.10"]);
}

#[test]
fn short_packets_and_responses_are_dropped() {
    assert!(run(&[]).is_none());
    assert!(run(&[0u8; 11]).is_none());
    let mut response = good();
    response.metadata.message_type = MessageType::Response;
    assert!(run(&response.to_vec().unwrap()).is_none());
}

#[test]
fn broken_bodies_get_formerr_with_the_request_id() {
    let request = good();
    let mut bytes = request.to_vec().unwrap();
    bytes.truncate(bytes.len() - 3);
    let answer = run(&bytes).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(answer.metadata.id, request.metadata.id);
    // A header claiming 200 questions with none present.
    let mut header_only = good().to_vec().unwrap()[..12].to_vec();
    header_only[4..6].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(rcode(&header_only), ResponseCode::FormErr);
}

#[test]
fn zero_or_several_questions_get_formerr() {
    let mut none = good();
    none.queries.clear();
    assert_eq!(rcode(&none.to_vec().unwrap()), ResponseCode::FormErr);
    let mut two = good();
    two.add_query(Query::query(
        Name::from_ascii("a.example.").unwrap(),
        RecordType::A,
    ));
    assert_eq!(rcode(&two.to_vec().unwrap()), ResponseCode::FormErr);
}

#[test]
fn other_opcodes_and_classes_get_notimp() {
    let mut status = good();
    status.metadata.op_code = OpCode::Status;
    assert_eq!(rcode(&status.to_vec().unwrap()), ResponseCode::NotImp);
    let mut chaos = Message::query();
    let mut q = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    chaos.add_query(q);
    assert_eq!(rcode(&chaos.to_vec().unwrap()), ResponseCode::NotImp);
}

#[test]
fn oversized_requests_get_formerr() {
    let mut bytes = good().to_vec().unwrap();
    bytes.resize(5000, 0);
    assert_eq!(rcode(&bytes), ResponseCode::FormErr);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes: no panic, no hang, and any answer is a parseable response to that id.
    #[test]
    fn arbitrary_bytes_never_break_the_handler(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Some(answer) = run(&raw) {
            prop_assert_eq!(answer.metadata.message_type, MessageType::Response);
            prop_assert_eq!(answer.metadata.id, u16::from_be_bytes([raw[0], raw[1]]));
        }
    }

    /// Valid headers with random bodies exercise the parser past the header more often.
    #[test]
    fn random_bodies_behind_a_query_header(body in proptest::collection::vec(any::<u8>(), 0..300), qd in 0u16..4) {
        let mut raw = vec![0x12, 0x34, 0x01, 0x00];
        raw.extend_from_slice(&qd.to_be_bytes());
        raw.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        raw.extend_from_slice(&body);
        if let Some(answer) = run(&raw) {
            prop_assert_eq!(answer.metadata.id, 0x1234);
        }
    }
}
