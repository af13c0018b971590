//! [`ThinStr`]: a shared, immutable string behind a one-word pointer.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// A shared string in one machine word (an `Arc<str>` is two: pointer and length).
///
/// For the strings an endpoint holds (its node's name, its hostname): three endpoints per
/// service and two such fields each, so at 100,000 services the second word was 4.6 MiB of the
/// catalog and 6.9 MiB of the Snapshot (`memory_budget`). The length lives in the shared
/// allocation; node names are interned ([`node_name`](crate::node_name)), so that allocation is
/// one per node.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThinStr(Arc<String>);

impl ThinStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the same shared allocation (not merely equal strings).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for ThinStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ThinStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets a set of `ThinStr` be searched by `&str` (the intern table). Hash and ordering are the
/// string's own, as `Borrow` requires.
impl Borrow<str> for ThinStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ThinStr {
    fn from(s: &str) -> Self {
        Self(Arc::new(s.to_owned()))
    }
}

impl PartialEq<str> for ThinStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ThinStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ThinStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ThinStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl Serialize for ThinStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn is_one_word_and_an_option_of_it_too() {
        assert_eq!(size_of::<ThinStr>(), size_of::<usize>());
        assert_eq!(size_of::<Option<ThinStr>>(), size_of::<usize>());
    }

    #[test]
    fn reads_compares_hashes_and_serializes_as_its_string() {
        let node = ThinStr::from("edge-1");
        assert_eq!(&*node, "edge-1");
        assert_eq!(node, "edge-1");
        assert_eq!(node.to_string(), "edge-1");
        assert_eq!(format!("{node:?}"), "\"edge-1\"");
        assert_eq!(serde_json::to_string(&node).unwrap(), "\"edge-1\"");
        let set: HashSet<ThinStr> = [node.clone()].into();
        assert!(set.contains("edge-1"));
        assert!(ThinStr::ptr_eq(set.get("edge-1").unwrap(), &node));
        assert!(!ThinStr::ptr_eq(&ThinStr::from("edge-1"), &node));
    }
}
