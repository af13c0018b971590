//! The proxier's rules: which ClusterIP, external-IP and node-port traffic the kernel hands to the
//! agent's transparent proxy.
//!
//! - [`desired_rules`] turns a [`Snapshot`](edgemesh_model::Snapshot) into a [`RuleSet`] (pure):
//!   a constant number of rules plus one set element per intercepted frontend.
//! - The kernel fast path ([`FastPathOptions`]): TCP frontends that need no userspace decision
//!   (round robin or random over endpoints of this node) are DNATed by nftables itself.
//! - [`trace`] tells what those rules do to one packet, for fast tests.
//! - [`RuleBackend`] applies a rule set atomically: [`NftBackend`] (our own `table inet
//!   edgemesh`, one `nft -f -` per sync — the whole table first, then only the set and map
//!   elements that changed — base chains at priority -110, ahead of kube-proxy),
//!   [`IptablesBackend`] (EdgeMesh's `KUBE-PORTALS-*` chains through `iptables-restore
//!   --noflush`, with the jumps kept ahead of `KUBE-SERVICES`; UDP in `EDGEMESH-UDP-*` chains of
//!   raw and mangle) and [`FakeBackend`].
//! - [`Proxier`] keeps the kernel's rules equal to the latest complete Snapshot (debounced,
//!   retried after a failure, the chain order repaired periodically) and counts what it did.
//! - [`timestamps`]: TCP timestamps without per-connection offsets (opt-in), so a node reaching a
//!   backend both through a ClusterIP and directly does not stall on the backend's TIME_WAIT.
//! - Every command goes through a [`CommandRunner`], so tests run them inside a network namespace.
//!
//! See `docs/proxier.md` for the chains, priorities and what an operator can inspect.
#![forbid(unsafe_code)]

pub mod backend;
pub mod error;
#[cfg(any(test, feature = "testing"))]
mod fake;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod iptables;
pub mod nft;
pub mod proxier;
pub mod rules;
pub mod runner;
mod select;
pub mod settings;
pub mod start;
pub mod timestamps;
pub mod trace;

pub use backend::{BackendKind, RuleBackend, SyncStats};
pub use error::{NetfilterError, Result};
#[cfg(any(test, feature = "testing"))]
pub use fake::FakeBackend;
pub use iptables::{IptablesBackend, render_iptables};
pub use nft::{NftBackend, render_nft, render_nft_cleanup};
pub use proxier::{Proxier, ProxierStats};
pub use rules::{
    DEFAULT_BYPASS_MARK, DEFAULT_TCP_PROXY_PORT, DEFAULT_TPROXY_MARK, FastPathOptions, FastRoute,
    Hook, IpFamily, MarkMatch, RuleOptions, RuleSet, Spread, UdpOptions, desired_rules,
};
pub use runner::{CommandRunner, SystemRunner};
pub use select::select_backend;
pub use trace::{Packet, Verdict, trace};
