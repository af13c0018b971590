//! tracing-subscriber set-up: `RUST_LOG`-style filters, text or JSON lines on stderr, and the log
//! flags every role of the binary shares (our own filter, and klog's `--v` that EdgeMesh's
//! manifests and users pass).

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Dependencies whose routine output is noise to an operator: netlink-packet-route warns about
/// every kernel attribute newer than itself, hickory-server logs every DNS query at info, and
/// kube's client logs every non-2xx answer as an ERROR (KubeEdge's metaServer answers API
/// discovery with 500 by design; the agent reports what each failure means itself). rustls warns
/// once per handshake about what a client sent (an IP address as SNI, as wrk sends it): any
/// client could make the gateway write a line per connection (7,937 lines in 4 s of wrk); the
/// gateway logs refused handshakes itself.
const QUIET_DEPENDENCIES: &str =
    "netlink_packet_route=error,hickory_server=warn,kube_client::client::builder=off,rustls=error";

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

/// Log flags of every role.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log filter in RUST_LOG syntax, e.g. `info,edgemesh_tunnel=debug` (RUST_LOG, when set,
    /// wins). Default: `info`, or what `--v` asks for.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// klog verbosity, as EdgeMesh takes it (`--v=4`): 0–3 info, 4–5 debug and 6 or more trace
    /// for edgemesh's own modules. `--log-level` wins when both are given.
    #[arg(long = "v", short = 'v', value_name = "N")]
    pub verbosity: Option<u8>,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Installs the global subscriber these flags describe.
    pub fn init(&self) {
        init_logging(&self.filter(), self.log_format);
    }

    /// The filter in RUST_LOG syntax.
    pub fn filter(&self) -> String {
        match (&self.log_level, self.verbosity) {
            (Some(filter), _) => filter.clone(),
            (None, Some(v)) => klog_filter(v).to_owned(),
            (None, None) => "info".to_owned(),
        }
    }
}

/// klog's levels mapped onto ours. EdgeMesh logs its details at V(4); only our own modules
/// (targets starting with `edgemesh`) get louder, so libp2p and hyper do not flood the log.
fn klog_filter(verbosity: u8) -> &'static str {
    match verbosity {
        0..=3 => "info",
        4..=5 => "info,edgemesh=debug",
        _ => "info,edgemesh=trace",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(log_level: Option<&str>, verbosity: Option<u8>) -> LogArgs {
        LogArgs {
            log_level: log_level.map(str::to_owned),
            verbosity,
            log_format: LogFormat::Text,
        }
    }

    #[test]
    fn filter_from_flags() {
        let cases = [
            (None, None, "info"),
            (None, Some(0), "info"),
            (None, Some(2), "info"),
            (None, Some(4), "info,edgemesh=debug"),
            (None, Some(6), "info,edgemesh=trace"),
            (Some("warn"), Some(6), "warn"),
            (Some("debug"), None, "debug"),
        ];
        for (level, v, want) in cases {
            assert_eq!(args(level, v).filter(), want, "{level:?} {v:?}");
        }
    }
}
