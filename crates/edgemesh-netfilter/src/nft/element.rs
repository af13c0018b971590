//! One set or map element, typed: written as nft text (`10.96.0.10 . tcp . 53`) in a
//! transaction of `nft -f`, or as the bytes of an nf_tables netlink message
//! ([`super::netlink`]) when a full rewrite carries too many elements for `nft` to parse quickly.

use std::fmt;
use std::net::IpAddr;

use edgemesh_model::Protocol;

/// One field of a key or a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Addr(IpAddr),
    Proto(Protocol),
    Port(u16),
    /// A `numgen ... mod N` result: which backend of a fast-path frontend.
    Slot(u32),
}

/// Up to three fields joined with ` . ` (a concatenation when more than one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    len: u8,
    items: [Field; 3],
}

impl Fields {
    pub fn two(a: Field, b: Field) -> Self {
        Self {
            len: 2,
            items: [a, b, Field::Slot(0)],
        }
    }

    pub fn three(a: Field, b: Field, c: Field) -> Self {
        Self {
            len: 3,
            items: [a, b, c],
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Field> {
        self.items[..usize::from(self.len)].iter()
    }

    /// The kernel's layout of a concatenation: each field in its own 4-byte-aligned register.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        for field in self.iter() {
            let start = out.len();
            match *field {
                Field::Addr(IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
                Field::Addr(IpAddr::V6(ip)) => out.extend_from_slice(&ip.octets()),
                Field::Proto(protocol) => out.push(ip_protocol_number(protocol)),
                Field::Port(port) => out.extend_from_slice(&port.to_be_bytes()),
                // `numgen` writes its result in host byte order.
                Field::Slot(slot) => out.extend_from_slice(&slot.to_ne_bytes()),
            }
            out.resize(start + (out.len() - start).next_multiple_of(4), 0);
        }
    }
}

/// A set element (`key`) or a map element (`key : value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Element {
    pub key: Fields,
    pub value: Option<Fields>,
}

impl Element {
    pub fn set(key: Fields) -> Self {
        Self { key, value: None }
    }

    pub fn map(key: Fields, value: Fields) -> Self {
        Self {
            key,
            value: Some(value),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Addr(ip) => ip.fmt(f),
            Field::Proto(protocol) => f.write_str(l4(*protocol)),
            Field::Port(port) => port.fmt(f),
            Field::Slot(slot) => slot.fmt(f),
        }
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" . ")?;
            }
            field.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key.fmt(f)?;
        match &self.value {
            Some(value) => write!(f, " : {value}"),
            None => Ok(()),
        }
    }
}

/// The protocol's name in nft text.
pub fn l4(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn ip_protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_bytes_of_a_concatenation() {
        let key = Fields::three(
            Field::Addr("10.96.0.10".parse().unwrap()),
            Field::Proto(Protocol::Udp),
            Field::Port(53),
        );
        assert_eq!(key.to_string(), "10.96.0.10 . udp . 53");
        let mut bytes = Vec::new();
        key.write_bytes(&mut bytes);
        assert_eq!(bytes, [10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0]);

        let value = Fields::two(Field::Addr("fd00::1".parse().unwrap()), Field::Port(8080));
        let element = Element::map(
            Fields::three(
                Field::Addr("fd00::a".parse().unwrap()),
                Field::Port(80),
                Field::Slot(2),
            ),
            value,
        );
        assert_eq!(element.to_string(), "fd00::a . 80 . 2 : fd00::1 . 8080");
        let mut bytes = Vec::new();
        element.key.write_bytes(&mut bytes);
        assert_eq!(bytes.len(), 16 + 4 + 4);
        assert_eq!(&bytes[20..], 2u32.to_ne_bytes());
    }
}
