//! Which kinds a role reads: the sources watch exactly these, and readiness waits for exactly
//! these.

use edgemesh_model::ResourceKind;

/// The objects one role of the binary reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inputs {
    /// The agent: [`ResourceKind::ALL`]. Never Gateways, VirtualServices or Secrets: the agent's
    /// ServiceAccount is not granted Secrets, and it has no use for them.
    #[default]
    Agent,
    /// The ingress gateway: the agent's kinds plus [`ResourceKind::INGRESS`].
    Gateway,
}

impl Inputs {
    /// Every kind read, the agent's first.
    pub fn kinds(self) -> impl Iterator<Item = ResourceKind> {
        let ingress: &[ResourceKind] = match self {
            Inputs::Agent => &[],
            Inputs::Gateway => &ResourceKind::INGRESS,
        };
        ResourceKind::ALL.into_iter().chain(ingress.iter().copied())
    }

    /// Whether `kind` is read.
    pub fn reads(self, kind: ResourceKind) -> bool {
        self.kinds().any(|k| k == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_reads_no_ingress_kind_and_the_gateway_reads_everything() {
        for kind in ResourceKind::INGRESS {
            assert!(!Inputs::Agent.reads(kind), "{kind}");
            assert!(Inputs::Gateway.reads(kind), "{kind}");
        }
        assert_eq!(Inputs::Agent.kinds().collect::<Vec<_>>(), ResourceKind::ALL);
        assert_eq!(
            Inputs::Gateway.kinds().count(),
            ResourceKind::ALL.len() + ResourceKind::INGRESS.len()
        );
    }
}
