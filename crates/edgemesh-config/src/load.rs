//! Reading the file: typed parse, unknown keys as warnings, EdgeMesh's mode-dependent defaults.

mod duplicates;
mod known;
mod probe;

use std::path::Path;

use crate::error::{ConfigError, Warning};
use crate::{AgentConfig, RunningMode};

/// A parsed config and what the operator should be told about it.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: AgentConfig,
    /// Unknown, legacy and run-time-only keys, features accepted but not implemented.
    pub warnings: Vec<Warning>,
}

impl AgentConfig {
    /// Reads and parses `path` on top of EdgeMesh's defaults for `mode`. Does not validate.
    pub fn load(path: &Path, mode: RunningMode) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_yaml(&text, &path.display().to_string(), mode)
    }

    /// Parses `text`; `file` names it in errors. Keys absent from the text keep EdgeMesh's
    /// defaults for `mode`; an empty document is all defaults.
    pub fn from_yaml(text: &str, file: &str, mode: RunningMode) -> Result<Loaded, ConfigError> {
        let (parsed, ignored) = parse_typed(text, file)?;
        let mut config = parsed.unwrap_or_default();
        let present = probe::Present::scan(text);
        if mode == RunningMode::Cloud {
            apply_cloud_defaults(&mut config, &present);
        }
        let mut warnings: Vec<Warning> = duplicates::find(text)
            .iter()
            .map(duplicates::Duplicate::warning)
            .collect();
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

type Parsed = (Option<AgentConfig>, Vec<String>);

/// One pass that yields the typed config, the path of every key serde ignored and, on error,
/// the path of the key that failed.
fn parse_typed(text: &str, file: &str) -> Result<Parsed, ConfigError> {
    let mut failed_at = None;
    let outcome =
        serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
            let mut ignored = Vec::new();
            let mut record = |path: serde_ignored::Path<'_>| ignored.push(dotted(&path));
            let tracked = serde_ignored::Deserializer::new(de, &mut record);
            match serde_path_to_error::deserialize::<_, Option<AgentConfig>>(tracked) {
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
        return "more than one YAML document; the file must hold the agent config alone".into();
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
