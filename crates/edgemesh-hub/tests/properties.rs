//! Invariants, checked with proptest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use edgemesh_hub::agents::AgentList;
use edgemesh_hub::request::ResourceKey;
use edgemesh_hub::store::{CachedObject, ListScope, ResourceCache};
use edgemesh_selector::{FieldSelector, LabelSelector};
use proptest::prelude::*;
use serde_json::json;

proptest! {
    /// Selectors come from clients: any text parses or fails, never panics.
    #[test]
    fn selector_parsing_never_panics(text in ".{0,60}") {
        let _ = LabelSelector::parse(&text);
        let _ = FieldSelector::parse(&text);
    }

    #[test]
    fn agent_lists_round_trip(names in proptest::collection::btree_set("[a-z][a-z0-9-]{0,10}", 0..6), all: bool) {
        let list = AgentList { all, names };
        prop_assert_eq!(AgentList::parse(&list.render()), list);
    }

    #[test]
    fn resource_dir_names_round_trip(resource in "[a-z]{1,12}", version in "v[0-9]{1,2}(beta[0-9])?", group in "(|[a-z]{1,8}(\\.[a-z]{1,8}){0,2})") {
        let key = ResourceKey { group, version, resource };
        prop_assert_eq!(ResourceKey::from_dir_name(&key.dir_name()), Some(key));
    }

    /// After lists of the whole collection, the cache answers exactly the last list.
    #[test]
    fn the_last_full_list_is_what_is_answered(lists in proptest::collection::vec(proptest::collection::btree_set(0u8..30, 0..20), 1..5)) {
        let mut cache = ResourceCache::default();
        let all = ListScope::default();
        for (rv, names) in lists.iter().enumerate() {
            let items = names.iter().map(|n| CachedObject::new(json!({"metadata": {
                "name": format!("o{n}"), "namespace": "ns", "resourceVersion": (rv + 1).to_string()}})).unwrap()).collect();
            cache.replace_list(&all, items, (rv + 1).to_string()).unwrap();
        }
        let (items, _) = cache.list(&all).unwrap().unwrap();
        let got: Vec<String> = items.iter().map(|o| o.name.clone()).collect();
        let mut want: Vec<String> = lists.last().unwrap().iter().map(|n| format!("o{n}")).collect();
        want.sort();
        prop_assert_eq!(got, want);
    }
}
