//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use edgemesh_config::{AgentConfig, Loaded, RunningMode};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn load_fixture(name: &str, mode: RunningMode) -> Loaded {
    AgentConfig::load(&fixture(name), mode)
        .unwrap_or_else(|e| panic!("fixture {name} must load: {e}"))
}

pub fn parse(text: &str) -> Loaded {
    AgentConfig::from_yaml(text, "test.yaml", RunningMode::Edge)
        .unwrap_or_else(|e| panic!("must parse: {e}\n{text}"))
}

/// The validation messages for `text`, one string per error.
pub fn validation_errors(text: &str) -> Vec<String> {
    match parse(text).config.validate() {
        Ok(()) => Vec::new(),
        Err(errors) => errors.messages(),
    }
}

pub fn warning_keys(loaded: &Loaded) -> Vec<String> {
    loaded.warnings.iter().map(|w| w.key.clone()).collect()
}
