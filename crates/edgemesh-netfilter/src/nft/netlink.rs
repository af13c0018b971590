//! Set and map elements as one nf_tables netlink batch (what `nft` itself sends after parsing):
//! `NFNL_MSG_BATCH_BEGIN`; per set, `NFT_MSG_DELSETELEM` without elements (a flush) and
//! `NFT_MSG_NEWSETELEM` messages of up to ~1,500 elements each (an attribute's length is 16
//! bits); `NFNL_MSG_BATCH_END`. The kernel applies the batch as one
//! transaction. Layouts from `linux/netfilter/nf_tables.h` and `nfnetlink.h`.

use super::element::{Element, Fields};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
/// Room left in a message's element list before the next message starts (the list's length
/// must fit in 16 bits; the largest element, IPv6 key and value, is ~70 bytes).
const LIST_LIMIT: usize = 60_000;

/// A batch under construction: every message asks for an acknowledgement, counted in `acks`.
#[derive(Debug)]
pub struct ElementBatch {
    bytes: Vec<u8>,
    seq: u32,
    acks: usize,
    table: &'static str,
    /// The sets and maps this batch fills, in order.
    collections: Vec<String>,
}

/// A finished batch and how many acknowledgements the kernel will send for it.
#[derive(Debug)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub acks: usize,
}

impl ElementBatch {
    /// A batch adding elements to sets and maps of `inet <table>`.
    pub fn new(table: &'static str) -> Self {
        let mut batch = Self {
            bytes: Vec::new(),
            seq: 0,
            acks: 0,
            table,
            collections: Vec::new(),
        };
        batch.control(NFNL_MSG_BATCH_BEGIN);
        batch
    }

    /// Replaces the elements of the set or map `set` with `elements`: a flush, then as many
    /// messages as they need, in the same transaction.
    pub fn fill(&mut self, set: &str, elements: impl Iterator<Item = Element>) {
        self.collections.push(set.to_string());
        let flush = self.begin(NFT_MSG_DELSETELEM | (NFNL_SUBSYS_NFTABLES << 8));
        self.put_names(set);
        self.end_message(flush);
        let mut elements = elements.peekable();
        while elements.peek().is_some() {
            let message = self.begin(NFT_MSG_NEWSETELEM | (NFNL_SUBSYS_NFTABLES << 8));
            self.put_names(set);
            let list = self.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            while self.bytes.len() - list < LIST_LIMIT
                && let Some(element) = elements.next()
            {
                self.put_element(&element);
            }
            self.end_nest(list);
            self.end_message(message);
        }
    }

    /// Whether [`Self::fill`] was called for `set`.
    pub fn declares(&self, set: &str) -> bool {
        self.collections.iter().any(|c| c == set)
    }

    pub fn finish(mut self) -> Batch {
        self.control(NFNL_MSG_BATCH_END);
        Batch {
            bytes: self.bytes,
            acks: self.acks,
        }
    }

    /// The table and the set a message is about (a flush without an element list).
    fn put_names(&mut self, set: &str) {
        self.put_str(NFTA_SET_ELEM_LIST_TABLE, self.table);
        self.put_str(NFTA_SET_ELEM_LIST_SET, set);
    }

    fn put_element(&mut self, element: &Element) {
        let item = self.begin_nest(NFTA_LIST_ELEM);
        self.put_fields(NFTA_SET_ELEM_KEY, &element.key);
        if let Some(value) = &element.value {
            self.put_fields(NFTA_SET_ELEM_DATA, value);
        }
        self.end_nest(item);
    }

    /// `kind { NFTA_DATA_VALUE: bytes }`.
    fn put_fields(&mut self, kind: u16, fields: &Fields) {
        let nest = self.begin_nest(kind);
        let value = self.begin_attr(NFTA_DATA_VALUE);
        fields.write_bytes(&mut self.bytes);
        self.end_attr(value);
        self.end_nest(nest);
    }

    /// Batch begin or end: no payload but the subsystem, no acknowledgement.
    fn control(&mut self, kind: u16) {
        let at = self.header(kind, NLM_F_REQUEST);
        self.genmsg(0, NFNL_SUBSYS_NFTABLES);
        self.end_message(at);
    }

    fn begin(&mut self, kind: u16) -> usize {
        self.acks += 1;
        let at = self.header(kind, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        self.genmsg(NFPROTO_INET, 0);
        at
    }

    /// `struct nlmsghdr` with its length patched by [`Self::end_message`].
    fn header(&mut self, kind: u16, flags: u16) -> usize {
        let at = self.bytes.len();
        self.seq += 1;
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(&flags.to_ne_bytes());
        self.bytes.extend_from_slice(&self.seq.to_ne_bytes());
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        at
    }

    /// `struct nfgenmsg`: family, version 0, resource id (big-endian).
    fn genmsg(&mut self, family: u8, resource: u16) {
        self.bytes.extend_from_slice(&[family, 0]);
        self.bytes.extend_from_slice(&resource.to_be_bytes());
    }

    fn end_message(&mut self, at: usize) {
        self.patch_len32(at);
    }

    fn put_str(&mut self, kind: u16, text: &str) {
        let at = self.begin_attr(kind);
        self.bytes.extend_from_slice(text.as_bytes());
        self.bytes.push(0);
        self.end_attr(at);
    }

    fn begin_nest(&mut self, kind: u16) -> usize {
        self.begin_attr(kind | NLA_F_NESTED)
    }

    fn end_nest(&mut self, at: usize) {
        self.end_attr(at);
    }

    /// `struct nlattr` with its length patched by [`Self::end_attr`].
    fn begin_attr(&mut self, kind: u16) -> usize {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(&0u16.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        at
    }

    /// Writes the attribute's unpadded length, then pads to 4 bytes.
    fn end_attr(&mut self, at: usize) {
        let len = u16::try_from(self.bytes.len() - at).unwrap_or(u16::MAX);
        self.bytes[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self.pad();
    }

    fn patch_len32(&mut self, at: usize) {
        self.pad();
        let len = u32::try_from(self.bytes.len() - at).unwrap_or(u32::MAX);
        self.bytes[at..at + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::element::Field;

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([bytes[at], bytes[at + 1]])
    }

    #[test]
    fn a_batch_is_begin_messages_end_and_each_message_asks_for_an_ack() {
        let element = |i: u16| {
            Element::set(Fields::two(
                Field::Addr("10.96.0.1".parse().unwrap()),
                Field::Port(i),
            ))
        };
        let mut batch = ElementBatch::new("edgemesh");
        batch.fill("fastsvc4", (0..7_000).map(element));
        batch.fill("empty", std::iter::empty());
        assert!(batch.declares("empty") && !batch.declares("svc4"));
        let batch = batch.finish();
        // A flush each, then 7,000 elements of 20 bytes: three messages under the 16-bit list
        // length.
        assert_eq!(batch.acks, 5);

        let mut at = 0;
        let mut kinds = Vec::new();
        while at < batch.bytes.len() {
            let len = u32::from_ne_bytes(batch.bytes[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            kinds.push(u16_at(&batch.bytes, at + 4));
            at += len;
        }
        assert_eq!(at, batch.bytes.len(), "lengths add up to the batch");
        assert_eq!(kinds, [0x10, 0x0a0e, 0x0a0c, 0x0a0c, 0x0a0c, 0x0a0e, 0x11]);
    }
}
