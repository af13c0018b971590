//! The log flags every role shares: our own filter, and klog's `--v` that EdgeMesh's manifests
//! and users pass.

use clap::{Args, ValueEnum};
use edgemesh_telemetry::{LogFormat, init_logging};

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
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl LogArgs {
    /// Installs the global subscriber these flags describe.
    pub fn init(&self) {
        let format = match self.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
        init_logging(&self.filter(), format);
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
            log_format: LogFormatArg::Text,
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
