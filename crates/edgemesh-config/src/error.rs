//! Errors and warnings. Every message names the key path, the value and what is wrong, on one
//! line, so the binary can print it as is and exit with status 2.

use std::fmt;
use std::path::PathBuf;

/// Why a config could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// YAML syntax or a value of the wrong type; `key` is the dotted path (`.` for the root).
    #[error("{}: {key}: {message}", Location { file, line: *line, column: *column })]
    Parse {
        /// The file path, or a name for text that came from elsewhere.
        file: String,
        line: Option<u64>,
        column: Option<u64>,
        key: String,
        message: String,
    },
    /// The other component's file (e.g. an `EdgeMeshAgent` file given to `edgemesh gateway`).
    #[error(
        "{file}: {key}: '{value}' is the config of `{belongs_to}`; `{reader}` reads kind {expected}"
    )]
    WrongKind {
        file: String,
        /// `kind` or `apiVersion`.
        key: &'static str,
        value: String,
        /// The command whose file it is, e.g. `edgemesh agent`.
        belongs_to: &'static str,
        /// The command that was given it.
        reader: &'static str,
        /// The kind `reader` reads.
        expected: &'static str,
    },
    /// `modules.edgeGateway.enable` is false: the gateway would serve nothing.
    #[error(
        "modules.edgeGateway.enable is false (EdgeMesh's default when the key is absent), so the gateway has nothing to serve; set modules.edgeGateway.enable: true"
    )]
    GatewayDisabled,
    #[error("{key}: invalid value '{value}' (allowed: {allowed})")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("{key}: file '{}' does not exist", path.display())]
    FileMissing { key: String, path: PathBuf },
    #[error("{key}: '{}' is not a regular file", path.display())]
    NotAFile { key: String, path: PathBuf },
    #[error("{key}: directory '{}' does not exist", path.display())]
    DirMissing { key: String, path: PathBuf },
    #[error("{key}: '{}' is not a directory", path.display())]
    NotADirectory { key: String, path: PathBuf },
    #[error("{key}: cannot access '{}': {reason}", path.display())]
    Inaccessible {
        key: String,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot determine the node name: {reason} (set --node-name or NODE_NAME)")]
    NodeName { reason: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, value: impl fmt::Display, allowed: &str) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_string(),
            allowed: allowed.to_owned(),
        }
    }
}

/// `file:line:column` when known.
struct Location<'a> {
    file: &'a str,
    line: Option<u64>,
    column: Option<u64>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Every problem [`crate::AgentConfig::validate`] found, in file order. Displayed one per line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// The messages, one per error.
    pub fn messages(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Something the operator should know that does not stop the agent (logged by the binary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Dotted key path, e.g. `modules.edgeProxy.fooBar`.
    pub key: String,
    pub message: String,
}

impl Warning {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}
