//! Which clients are cached: User-Agent names from `--cache-agents` plus the `cache_agents` key
//! of ConfigMap `kube-system/edge-hub-cfg` (comma separated, `*` = every client), the latter
//! replaced live whenever the ConfigMap changes.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// A parsed `cache_agents` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentList {
    pub all: bool,
    pub names: BTreeSet<String>,
}

impl AgentList {
    /// Parses `"kubectl, edge-app,*"`; blanks are ignored.
    pub fn parse(text: &str) -> Self {
        let mut list = Self::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                list.all = true;
            } else {
                list.names.insert(name.to_string());
            }
        }
        list
    }

    pub fn contains(&self, agent: &str) -> bool {
        !agent.is_empty() && (self.all || self.names.contains(agent))
    }

    /// Back to the `cache_agents` syntax.
    pub fn render(&self) -> String {
        let mut parts: Vec<&str> = self.names.iter().map(String::as_str).collect();
        if self.all {
            parts.push("*");
        }
        parts.join(",")
    }
}

/// The flags' list and the ConfigMap's, shared by every request.
#[derive(Debug)]
pub struct CacheAgents {
    flags: AgentList,
    config_map: ArcSwap<AgentList>,
}

impl CacheAgents {
    pub fn new(flags: AgentList, config_map: AgentList) -> Self {
        Self {
            flags,
            config_map: ArcSwap::new(Arc::new(config_map)),
        }
    }

    pub fn caches(&self, agent: &str) -> bool {
        self.flags.contains(agent) || self.config_map.load().contains(agent)
    }

    /// Replaces the ConfigMap's list; returns whether it changed.
    pub fn set_config_map(&self, list: AgentList) -> bool {
        if **self.config_map.load() == list {
            return false;
        }
        self.config_map.store(Arc::new(list));
        true
    }

    pub fn config_map(&self) -> AgentList {
        (**self.config_map.load()).clone()
    }

    pub fn flags(&self) -> &AgentList {
        &self.flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_and_matching() {
        let table = [
            ("kubectl", "kubectl", true),
            ("kubectl", "edge-app", false),
            (" kubectl , edge-app ", "edge-app", true),
            ("*", "anything", true),
            ("*", "", false),
            ("", "kubectl", false),
            (",,", "kubectl", false),
        ];
        for (text, agent, expected) in table {
            assert_eq!(
                AgentList::parse(text).contains(agent),
                expected,
                "{text} {agent}"
            );
        }
        assert_eq!(AgentList::parse("b,a,*").render(), "a,b,*");
    }

    #[test]
    fn config_map_changes_apply_live() {
        let agents = CacheAgents::new(AgentList::parse("kubectl"), AgentList::default());
        assert!(!agents.caches("edge-app"));
        assert!(agents.set_config_map(AgentList::parse("edge-app")));
        assert!(agents.caches("edge-app") && agents.caches("kubectl"));
        assert!(!agents.set_config_map(AgentList::parse("edge-app")));
    }
}
