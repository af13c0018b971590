//! Reading the file: typed parse, unknown keys as warnings, EdgeMesh's mode-dependent defaults.
//! The agent's and the gateway's files go through the same steps; only their key tables and
//! defaults differ.

mod duplicates;
pub(crate) mod known;
pub(crate) mod probe;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{ConfigError, Warning};
use crate::{AgentConfig, RunningMode};

/// A parsed config and what the operator should be told about it.
#[derive(Clone, Debug)]
pub struct Loaded<T = AgentConfig> {
    pub config: T,
    /// Unknown, legacy and run-time-only keys, features accepted but not implemented.
    pub warnings: Vec<Warning>,
}

/// The `apiVersion` and `kind` of one of EdgeMesh's config files, and the command that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileKind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub reader: &'static str,
}

pub(crate) const AGENT_FILE: FileKind = FileKind {
    api_version: crate::API_VERSION,
    kind: crate::KIND,
    reader: "edgemesh agent",
};

pub(crate) const GATEWAY_FILE: FileKind = FileKind {
    api_version: crate::GATEWAY_API_VERSION,
    kind: crate::GATEWAY_KIND,
    reader: "edgemesh gateway",
};

/// What the shared reading needs from a config type.
pub(crate) trait ConfigFile: DeserializeOwned + Default {
    const FILE: FileKind;
    /// `apiVersion` and `kind` as read.
    fn type_meta(&self) -> (&str, &str);
}

/// A file parsed by the shared steps, before the kind-specific ones.
pub(crate) struct Parsed<T> {
    pub config: T,
    /// Paths of the keys the typed parse ignored.
    pub ignored: Vec<String>,
    pub present: probe::Present,
    /// Duplicate keys and `apiVersion`/`kind` notices.
    pub warnings: Vec<Warning>,
}

pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Parses `text` (named `file` in errors) as `T`, and refuses the file of another component.
pub(crate) fn parse<T: ConfigFile>(text: &str, file: &str) -> Result<Parsed<T>, ConfigError> {
    let (parsed, ignored) = parse_typed::<T>(text, file)?;
    let config = parsed.unwrap_or_default();
    let (api_version, kind) = config.type_meta();
    let mut warnings = check_type_meta(file, T::FILE, api_version, kind)?;
    warnings.extend(
        duplicates::find(text)
            .iter()
            .map(duplicates::Duplicate::warning),
    );
    Ok(Parsed {
        config,
        ignored,
        present: probe::Present::scan(text),
        warnings,
    })
}

/// EdgeMesh reads neither key, so an unexpected value is only a warning, except the other
/// component's own kind or version: that file was mounted in the wrong place.
fn check_type_meta(
    file: &str,
    own: FileKind,
    api_version: &str,
    kind: &str,
) -> Result<Vec<Warning>, ConfigError> {
    let others = [AGENT_FILE, GATEWAY_FILE].into_iter().filter(|k| *k != own);
    for other in others {
        for (key, value, theirs) in [
            ("kind", kind, other.kind),
            ("apiVersion", api_version, other.api_version),
        ] {
            if value == theirs {
                return Err(ConfigError::WrongKind {
                    file: file.to_owned(),
                    key,
                    value: value.to_owned(),
                    belongs_to: other.reader,
                    reader: own.reader,
                    expected: own.kind,
                });
            }
        }
    }
    let mut warnings = Vec::new();
    if api_version != own.api_version {
        let message = format!(
            "expected '{}'; read as that version anyway",
            own.api_version
        );
        warnings.push(Warning::new("apiVersion", message));
    }
    if kind != own.kind {
        let message = format!("expected '{}'; read as that kind anyway", own.kind);
        warnings.push(Warning::new("kind", message));
    }
    Ok(warnings)
}

impl ConfigFile for AgentConfig {
    const FILE: FileKind = AGENT_FILE;
    fn type_meta(&self) -> (&str, &str) {
        (&self.api_version, &self.kind)
    }
}

impl AgentConfig {
    /// Reads and parses `path` on top of EdgeMesh's defaults for `mode`. Does not validate.
    pub fn load(path: &Path, mode: RunningMode) -> Result<Loaded, ConfigError> {
        let text = read_text(path)?;
        Self::from_yaml(&text, &path.display().to_string(), mode)
    }

    /// Parses `text`; `file` names it in errors. Keys absent from the text keep EdgeMesh's
    /// defaults for `mode`; an empty document is all defaults.
    pub fn from_yaml(text: &str, file: &str, mode: RunningMode) -> Result<Loaded, ConfigError> {
        let Parsed {
            mut config,
            ignored,
            present,
            mut warnings,
        } = parse::<Self>(text, file)?;
        if mode == RunningMode::Cloud {
            apply_cloud_defaults(&mut config, &present);
        }
        warnings.extend(ignored.iter().map(|k| known::classify(k)));
        warnings.extend(present.legacy_alias_warnings());
        warnings.extend(known::notices(&config));
        Ok(Loaded { config, warnings })
    }
}

/// EdgeMesh fills its defaults before reading the file, so a key the file sets wins; the
/// typed parse starts from edge-node defaults, so undo those the file did not set.
fn apply_cloud_defaults(config: &mut AgentConfig, present: &probe::Present) {
    let fresh = AgentConfig::defaults(RunningMode::Cloud);
    if !present.edge_dns_enable {
        config.modules.edge_dns.enable = fresh.modules.edge_dns.enable;
    }
    if !present.content_type {
        config.kube_api_config.content_type = fresh.kube_api_config.content_type;
    }
}

/// How EdgeMesh's YAML reader (Go's, through sigs.k8s.io/yaml) takes a file: a key written twice
/// keeps its last value (`duplicates` warns about it).
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
    }
}

/// One pass that yields the typed config, the path of every key serde ignored and, on error,
/// the path of the key that failed.
fn parse_typed<T: DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<(Option<T>, Vec<String>), ConfigError> {
    let mut failed_at = None;
    let outcome =
        serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
            let mut ignored = Vec::new();
            let mut record = |path: serde_ignored::Path<'_>| ignored.push(dotted(&path));
            let tracked = serde_ignored::Deserializer::new(de, &mut record);
            match serde_path_to_error::deserialize::<_, Option<T>>(tracked) {
                Ok(config) => Ok((config, ignored)),
                Err(e) => {
                    failed_at = Some(e.path().to_string());
                    Err(e.into_inner())
                }
            }
        });
    outcome.map_err(|e| parse_error(file, &key_path(failed_at.as_deref()), &e))
}

/// serde_path_to_error writes `?` for a key it could not name (e.g. a duplicate key);
/// the mapping that holds it is the useful part.
fn key_path(path: Option<&str>) -> String {
    let segments: Vec<&str> = path
        .unwrap_or_default()
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .collect();
    if segments.is_empty() {
        ".".to_owned()
    } else {
        segments.join(".")
    }
}

fn parse_error(file: &str, key: &str, error: &serde_saphyr::Error) -> ConfigError {
    let location = error.location();
    ConfigError::Parse {
        file: file.to_owned(),
        line: location.map(|l| l.line()),
        column: location.map(|l| l.column()),
        key: key.to_owned(),
        message: one_line(error),
    }
}

/// serde-saphyr's message without its source snippet and location (we print those ourselves).
fn one_line(error: &serde_saphyr::Error) -> String {
    let text = error.without_snippet().to_string();
    let first = strip_location_suffix(text.lines().next().unwrap_or_default());
    if first.starts_with("multiple YAML documents") {
        return "more than one YAML document; the file must hold the config alone".into();
    }
    // Drop hints aimed at the programmer calling serde-saphyr, not at the operator.
    first
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(first)
        .to_owned()
}

fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

/// `modules.edgeTunnel.relayNodes[0].fooBar`, the same form serde_path_to_error prints.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", dotted(parent)),
        Path::Map { parent, key } => {
            let parent = dotted(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => dotted(parent),
    }
}
