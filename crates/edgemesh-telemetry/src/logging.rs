//! tracing-subscriber set-up: `RUST_LOG`-style filters, text or JSON lines on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Dependencies whose routine output is noise to an operator: netlink-packet-route warns about
/// every kernel attribute newer than itself, hickory-server logs every DNS query at info, and
/// kube's client logs every non-2xx answer as an ERROR (KubeEdge's metaServer answers API
/// discovery with 500 by design; the agent reports what each failure means itself).
const QUIET_DEPENDENCIES: &str =
    "netlink_packet_route=error,hickory_server=warn,kube_client::client::builder=off";

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (e.g. `info,edgemesh_kube=debug`);
/// the `RUST_LOG` environment variable, when set, wins.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{filter},{QUIET_DEPENDENCIES}")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
