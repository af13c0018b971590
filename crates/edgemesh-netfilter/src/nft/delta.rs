//! The incremental transaction: from the rules the kernel holds to the next ones by deleting and
//! adding set and map elements only. The chains, and so the sets and maps they name, do not
//! depend on the number of services (one rule per fast-path group, never per service), so a
//! Service or endpoint change is a change of elements; a change of chains (options, a fast-path
//! group appearing or disappearing) is not expressed here and needs the full rewrite.
//!
//! Cost: a walk of both rule sets (sorted maps, no lookups) plus text for the changed frontends
//! only, against rendering and reloading every element of the table.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::iter::Peekable;

use edgemesh_model::Frontend;

use super::{NFT_TABLE, fast, intercepted_element};
use crate::rules::{FastRoute, IpFamily, RuleSet};

/// The transaction turning the kernel's `old` rules into `new`; empty when no element differs;
/// `None` when the chains (or options) differ, which only a full rewrite expresses.
pub fn render_nft_delta(old: &RuleSet, new: &RuleSet) -> Option<String> {
    if old.options != new.options || old.chains != new.chains {
        return None;
    }
    let mut delta = Delta::default();
    for (frontend, change) in changes(&old.elements, &new.elements) {
        let (set, element) = intercepted_element(frontend);
        match change {
            Change::Removed(_) => delta.delete(set, element.to_string()),
            Change::Added(_) => delta.add(set, element.to_string()),
            // The label is not part of the element.
            Change::Both(..) => {}
        }
    }
    for (frontend, change) in changes(&old.fast, &new.fast) {
        delta.fast_route(frontend, change);
    }
    Some(delta.render())
}

/// How one key differs between two maps.
#[derive(Debug, PartialEq, Eq)]
enum Change<'a, V> {
    Removed(&'a V),
    Added(&'a V),
    /// In both, with different values.
    Both(&'a V, &'a V),
}

/// The keys whose entries differ between `old` and `new`, in key order: one merge walk of the two
/// sorted maps.
fn changes<'a, K: Ord, V: PartialEq>(
    old: &'a BTreeMap<K, V>,
    new: &'a BTreeMap<K, V>,
) -> impl Iterator<Item = (&'a K, Change<'a, V>)> {
    Merge {
        old: old.iter().peekable(),
        new: new.iter().peekable(),
    }
}

struct Merge<I: Iterator> {
    old: Peekable<I>,
    new: Peekable<I>,
}

impl<'a, K: Ord + 'a, V: PartialEq + 'a, I> Iterator for Merge<I>
where
    I: Iterator<Item = (&'a K, &'a V)>,
{
    type Item = (&'a K, Change<'a, V>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.old.peek(), self.new.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((a, _)), Some((b, _))) => a.cmp(b),
            };
            match order {
                Ordering::Less => {
                    let (k, v) = self.old.next()?;
                    return Some((k, Change::Removed(v)));
                }
                Ordering::Greater => {
                    let (k, v) = self.new.next()?;
                    return Some((k, Change::Added(v)));
                }
                Ordering::Equal => {
                    let ((k, a), (_, b)) = (self.old.next()?, self.new.next()?);
                    if a != b {
                        return Some((k, Change::Both(a, b)));
                    }
                }
            }
        }
    }
}

/// Elements to delete and to add, by set or map name.
#[derive(Default)]
struct Delta {
    delete: BTreeMap<String, Vec<String>>,
    add: BTreeMap<String, Vec<String>>,
}

impl Delta {
    fn delete(&mut self, collection: impl Into<String>, element: String) {
        self.delete
            .entry(collection.into())
            .or_default()
            .push(element);
    }

    fn add(&mut self, collection: impl Into<String>, element: String) {
        self.add.entry(collection.into()).or_default().push(element);
    }

    /// A fast-path frontend that appeared, went, or changed backends: its map elements leave the
    /// old group's map and enter the new one's (the same map when the group stayed; a key cannot
    /// be re-added with another value without deleting it first).
    fn fast_route(&mut self, frontend: &Frontend, change: Change<'_, FastRoute>) {
        let family = IpFamily::of(&frontend.ip);
        let (old, new) = match change {
            Change::Removed(old) => (Some(old), None),
            Change::Added(new) => (None, Some(new)),
            // Only the spread of a single backend differs: nothing the kernel sees.
            Change::Both(old, new)
                if old.group() == new.group() && old.backends == new.backends =>
            {
                return;
            }
            Change::Both(old, new) => (Some(old), Some(new)),
        };
        let set = fast::set_name(family);
        if let Some(old) = old {
            let map = fast::map_name(family, old.group());
            for key in fast::map_keys(frontend, old) {
                self.delete(map.as_str(), key.to_string());
            }
        }
        if let Some(new) = new {
            let map = fast::map_name(family, new.group());
            for element in fast::map_elements(frontend, new) {
                self.add(map.as_str(), element.to_string());
            }
        }
        match (old, new) {
            (Some(_), None) => self.delete(set, fast::set_element(frontend).to_string()),
            (None, Some(_)) => self.add(set, fast::set_element(frontend).to_string()),
            _ => {}
        }
    }

    /// Every delete before every add: a changed map element is deleted, then added with its new
    /// value, in the same transaction.
    fn render(&self) -> String {
        let mut out = String::new();
        for (verb, collections) in [("delete", &self.delete), ("add", &self.add)] {
            for (name, elements) in collections {
                let _ = writeln!(
                    out,
                    "{verb} element {NFT_TABLE} {name} {{ {} }}",
                    elements.join(", ")
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
