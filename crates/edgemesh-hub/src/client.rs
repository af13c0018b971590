//! Who sent a request and on which listener: what the handlers need beyond the request itself.

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// Plain HTTP on loopback: node components (kubelet-like daemons, the agent with
    /// `--master http://127.0.0.1:10261`), which present no credentials of their own. As
    /// YurtHub does, the hub forwards them with the node's identity (`--token-file`).
    Node,
    /// HTTPS for pods: each client authenticates itself.
    Pod,
}

/// What the handlers need to know about the client beyond the request itself.
#[derive(Debug, Clone)]
pub struct Client {
    pub agent: String,
    /// The agent is in `cache_agents` (and its name is a safe directory name).
    pub cached: bool,
    pub credential: String,
    pub has_credentials: bool,
}
