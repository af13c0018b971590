//! One shared copy of the strings that repeat across many objects: namespaces (every key), node
//! names (every endpoint) and port names (every port). At 100,000 services with 3 endpoints each, copies of "default"
//! and of a few node names were hundreds of thousands of small allocations.
//!
//! A table only grows, up to a bound: past it, new strings are no longer shared (each holder
//! gets its own copy, as before), so a cluster that invents names without end cannot grow it.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::ThinStr;

/// A bounded table of shared strings, handed out as one-word [`ThinStr`]s (their holders repeat
/// per object, so the word saved counts).
pub(crate) struct Interned {
    table: Mutex<Option<HashSet<ThinStr>>>,
    limit: usize,
}

/// Namespaces: few in any cluster.
pub(crate) static NAMESPACES: Interned = Interned::new(4096);

/// Node names: one per node, and clusters of edge nodes run to thousands.
pub(crate) static NODE_NAMES: Interned = Interned::new(65536);

/// Port names and application protocols ("http", "grpc", "metrics", ""): a handful repeat in
/// every service and its endpoints.
pub(crate) static PORT_NAMES: Interned = Interned::new(4096);

impl Interned {
    const fn new(limit: usize) -> Self {
        Self {
            table: Mutex::new(None),
            limit,
        }
    }

    /// The shared copy of `s` (a new one while the table is full).
    pub(crate) fn get(&self, s: &str) -> ThinStr {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let table = table.get_or_insert_with(HashSet::new);
        if let Some(shared) = table.get(s) {
            return shared.clone();
        }
        let shared = ThinStr::from(s);
        if table.len() < self.limit {
            table.insert(shared.clone());
        }
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_copy_until_the_table_is_full() {
        let table = Interned::new(1);
        let (a, b) = (table.get("default"), table.get("default"));
        assert!(ThinStr::ptr_eq(&a, &b));
        let (c, d) = (table.get("kube-system"), table.get("kube-system"));
        assert_eq!(c, d);
        assert!(!ThinStr::ptr_eq(&c, &d), "past the bound, not shared");
    }
}
