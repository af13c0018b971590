//! Errors of the playground; each names what failed and, where it helps, what to do.

use std::path::PathBuf;

/// What went wrong while building, checking or removing the playground.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlaygroundError {
    #[error("the playground needs root (it creates network namespaces): run it with sudo")]
    NotRoot,
    #[error("invalid prefix {0:?}: use 1 to 8 lowercase letters or digits, starting with a letter")]
    InvalidPrefix(String),
    #[error("cannot run `{command}`: {error}")]
    Spawn {
        command: String,
        error: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{path}: {error}")]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("example {file}: {reason}")]
    Example { file: String, reason: String },
    #[error(
        "state file {path} is unreadable ({reason}); run `edgemesh playground down` to clear it"
    )]
    State { path: PathBuf, reason: String },
    #[error(
        "no playground node {0:?} (nodes: cloud, edge-a1, edge-a2, edge-b1, router-a, router-b)"
    )]
    UnknownNode(String),
    #[error("the playground is not up (no {0}); run `edgemesh playground up` first")]
    NotUp(PathBuf),
    #[error("{what} did not become ready within {seconds} s{detail}")]
    NotReady {
        what: String,
        seconds: u64,
        detail: String,
    },
    #[error("cannot enter network namespace {name}: {reason}")]
    Netns { name: String, reason: String },
}

impl PlaygroundError {
    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File {
            path: path.into(),
            error: source,
        }
    }
}
