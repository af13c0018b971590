//! Keys written twice in one mapping. Go's YAML (which EdgeMesh reads its file with) keeps the
//! last value, and EdgeMesh's own Helm chart renders `serviceFilterMode` twice when it is set,
//! so a duplicate is a warning that names the key and both lines, and the last value wins.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::error::Warning;

/// One key written again in the same mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Duplicate {
    /// Dotted path of the key, e.g. `modules.edgeProxy.serviceFilterMode`.
    pub key: String,
    pub first_line: usize,
    pub line: usize,
}

impl Duplicate {
    pub fn warning(&self) -> Warning {
        let message = format!(
            "written twice (lines {} and {}); the value at line {} is used, as EdgeMesh does",
            self.first_line, self.line, self.line
        );
        Warning::new(&self.key, message)
    }
}

/// Every duplicate key of `text`, in the order written. Runs after the typed parse succeeded,
/// so the text is valid YAML; were it not, no duplicate is reported.
pub(super) fn find(text: &str) -> Vec<Duplicate> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    let tree: Option<Node> = serde_saphyr::from_str_with_options(text, options).unwrap_or(None);
    let mut found = Vec::new();
    if let Some(tree) = tree {
        tree.collect("", &mut found);
    }
    found
}

/// The shape of a YAML document, with each mapping key's line.
#[derive(Debug)]
enum Node {
    Map(Vec<(Spanned<Key>, Node)>),
    Seq(Vec<Node>),
    Scalar,
}

impl Node {
    fn collect(&self, path: &str, found: &mut Vec<Duplicate>) {
        match self {
            Node::Map(entries) => {
                let mut first_seen: HashMap<&str, usize> = HashMap::new();
                for (key, value) in entries {
                    let name = key.value.0.as_str();
                    let child = if path.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    };
                    let line = key.referenced.line() as usize;
                    match first_seen.get(name) {
                        Some(&first_line) => found.push(Duplicate {
                            key: child.clone(),
                            first_line,
                            line,
                        }),
                        None => {
                            first_seen.insert(name, line);
                        }
                    }
                    value.collect(&child, found);
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.collect(&format!("{path}[{i}]"), found);
                }
            }
            Node::Scalar => {}
        }
    }
}

/// A mapping key as text, whatever scalar type it was written as.
#[derive(Debug)]
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(v.to_owned()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
        Ok(Key(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key("null".to_owned()))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Spanned<Key>, Node>()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_named_with_both_lines() {
        let text = "modules:\n  edgeProxy:\n    enable: true\n    serviceFilterMode: A\n    loadBalancer: {}\n    serviceFilterMode: B\n  edgeTunnel:\n    relayNodes:\n    - nodeName: a\n      nodeName: b\n";
        let found = find(text);
        let want = [
            ("modules.edgeProxy.serviceFilterMode", 4, 6),
            ("modules.edgeTunnel.relayNodes[0].nodeName", 9, 10),
        ];
        let got: Vec<_> = found
            .iter()
            .map(|d| (d.key.as_str(), d.first_line, d.line))
            .collect();
        assert_eq!(got, want);
        assert!(found[0].warning().message.contains("lines 4 and 6"));
    }

    #[test]
    fn no_duplicates_no_warnings() {
        for text in [
            "",
            "# only a comment\n",
            "a: 1\nb: {a: 1}\nc: [1, 2]\n",
            "a: [b, c",
        ] {
            assert!(find(text).is_empty(), "{text:?}");
        }
    }
}
