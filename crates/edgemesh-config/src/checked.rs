//! Values whose allowed set is narrower than their YAML type.
//!
//! The file is read in two steps: parsing keeps whatever scalar the operator wrote, and
//! [`crate::AgentConfig::validate`] later rejects values outside the allowed set with a message
//! that names the key, the value and what is allowed. Keeping the raw text (instead of failing
//! inside serde) is what lets validation report *every* bad value at once, in one format, for
//! values from the file and from flags alike.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use edgemesh_model::ServiceFilterMode;
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A type that can be read from one YAML scalar and says what values are allowed.
pub trait ConfigValue: Sized + Clone {
    /// What an operator may write, for error messages (e.g. `tcp, ws, quic`).
    const ALLOWED: &'static str;
    /// The value `raw` denotes, if it is allowed.
    fn parse(raw: &str) -> Option<Self>;
    /// How the value is written in the file.
    fn render(&self) -> String;
}

/// Implements [`ConfigValue`] for an enum whose values are written as fixed words:
/// `config_words!(Transport { Tcp => "tcp", Ws => "ws" })`. The words, in order, are also
/// what `ALLOWED` lists.
macro_rules! config_words {
    ($ty:ty { $first:ident => $first_word:literal $(, $variant:ident => $word:literal)* $(,)? }) => {
        impl $crate::checked::ConfigValue for $ty {
            const ALLOWED: &'static str = concat!($first_word $(, ", ", $word)*);
            fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $first_word => Some(Self::$first),
                    $($word => Some(Self::$variant),)*
                    _ => None,
                }
            }
            fn render(&self) -> String {
                match self {
                    Self::$first => $first_word,
                    $(Self::$variant => $word,)*
                }
                .to_owned()
            }
        }
    };
}
pub(crate) use config_words;

/// A scalar as written in the file together with its parsed value, if the value is allowed.
#[derive(Clone, PartialEq, Eq)]
pub struct Checked<T> {
    raw: String,
    parsed: Option<T>,
}

impl<T: ConfigValue> Checked<T> {
    /// A valid value (used for defaults and flags).
    pub fn new(value: T) -> Self {
        Self {
            raw: value.render(),
            parsed: Some(value),
        }
    }

    /// Parses `raw`, remembering it even when it is not allowed.
    pub fn from_raw(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let parsed = T::parse(&raw);
        Self { raw, parsed }
    }

    /// The value, or `None` when the file holds a value outside [`ConfigValue::ALLOWED`]
    /// (which [`crate::AgentConfig::validate`] reports).
    pub fn get(&self) -> Option<T> {
        self.parsed.clone()
    }

    /// The text as written.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn is_valid(&self) -> bool {
        self.parsed.is_some()
    }
}

impl<T: fmt::Debug> fmt::Debug for Checked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.parsed {
            Some(value) => value.fmt(f),
            None => write!(f, "Invalid({:?})", self.raw),
        }
    }
}

impl<'de, T: ConfigValue> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ScalarText(PhantomData))
            .map(Checked::from_raw)
    }
}

/// Accepts any scalar (string, number, boolean) as text; rejects maps and sequences.
struct ScalarText(PhantomData<()>);

impl Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A TCP/UDP port an agent listens on: 1..=65535 (0 would mean "any free port").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Port(pub u16);

impl ConfigValue for Port {
    const ALLOWED: &'static str = "1..=65535";
    fn parse(raw: &str) -> Option<Self> {
        raw.parse::<u16>().ok().filter(|p| *p != 0).map(Port)
    }
    fn render(&self) -> String {
        self.0.to_string()
    }
}

config_words!(ServiceFilterMode {
    FilterIfLabelExists => "FilterIfLabelExists",
    FilterIfLabelDoesNotExists => "FilterIfLabelDoesNotExists",
});

/// Transport of the node-to-node tunnel (`modules.edgeTunnel.transport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    /// WebSocket over TCP.
    Ws,
    /// QUIC over UDP.
    Quic,
}

config_words!(Transport { Tcp => "tcp", Ws => "ws", Quic => "quic" });

/// How the tunnel applies its PSK (`modules.edgeTunnel.psk.mode`, an edgemesh extension).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PskMode {
    /// In the noise handshake: one cipher on the data (edgemesh agents only).
    #[default]
    Noise,
    /// go-libp2p's private network, as EdgeMesh's Go agents apply it.
    Pnet,
}

config_words!(PskMode { Noise => "noise", Pnet => "pnet" });

/// How ClusterIP traffic is intercepted (`modules.edgeProxy.backend`, an edgemesh extension).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProxyBackend {
    /// nftables when the kernel and `nft` support it, else iptables.
    #[default]
    Auto,
    Nftables,
    Iptables,
}

config_words!(ProxyBackend { Auto => "auto", Nftables => "nftables", Iptables => "iptables" });

impl ConfigValue for Ipv4Addr {
    const ALLOWED: &'static str = "an IPv4 address, e.g. 169.254.96.16";
    fn parse(raw: &str) -> Option<Self> {
        Ipv4Addr::from_str(raw).ok()
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl ConfigValue for SocketAddr {
    const ALLOWED: &'static str = "IP:port, e.g. 127.0.0.1:10557 (port 0 picks a free port)";
    fn parse(raw: &str) -> Option<Self> {
        SocketAddr::from_str(raw).ok()
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_outside_1_to_65535_are_kept_raw_and_rejected() {
        let cases = [
            ("53", Some(53)),
            ("65535", Some(65535)),
            ("0", None),
            ("65536", None),
            ("-1", None),
            ("http", None),
        ];
        for (raw, want) in cases {
            let port = Checked::<Port>::from_raw(raw);
            assert_eq!(port.get().map(|p| p.0), want, "{raw}");
            assert_eq!(port.raw(), raw);
        }
    }

    #[test]
    fn enums_render_what_they_parse() {
        for t in [Transport::Tcp, Transport::Ws, Transport::Quic] {
            assert_eq!(Transport::parse(&t.render()), Some(t));
        }
        for b in [
            ProxyBackend::Auto,
            ProxyBackend::Nftables,
            ProxyBackend::Iptables,
        ] {
            assert_eq!(ProxyBackend::parse(&b.render()), Some(b));
        }
        for m in [
            ServiceFilterMode::FilterIfLabelExists,
            ServiceFilterMode::FilterIfLabelDoesNotExists,
        ] {
            assert_eq!(ServiceFilterMode::parse(&m.render()), Some(m));
        }
    }

    #[test]
    fn values_are_case_sensitive_like_edgemesh() {
        assert_eq!(Transport::parse("TCP"), None);
        assert_eq!(ServiceFilterMode::parse("filteriflabelexists"), None);
    }
}
