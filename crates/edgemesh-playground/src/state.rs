//! What `up` created, kept in `/run/edgemesh-playground/<prefix>/state.json` so `check`,
//! `exec` and `down` know it. `down` does not trust it alone: it also finds namespaces by
//! prefix, so a crash before the state was written still leaves nothing behind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::PlaygroundError;
use crate::plan::Plan;

/// A process `up` started (detached, in a node's namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// `agent/<node>` or `pod/<pod>`.
    pub name: String,
    pub netns: String,
    pub pid: u32,
    pub log: PathBuf,
}

/// The playground as `up` left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub prefix: String,
    /// Whether the agents were started with the tunnel (cross-LAN checks need it).
    pub tunnel: bool,
    pub namespaces: Vec<String>,
    pub processes: Vec<ProcessRecord>,
    /// Files outside the state directory (`/etc/netns/<ns>/resolv.conf`).
    pub files: Vec<PathBuf>,
}

/// Path of the state file of `plan`.
pub fn path(plan: &Plan) -> PathBuf {
    plan.state_dir().join("state.json")
}

/// The saved state, `None` when there is none.
pub fn load(plan: &Plan) -> Result<Option<State>, PlaygroundError> {
    let path = path(plan);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PlaygroundError::file(&path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| PlaygroundError::State {
            path,
            reason: e.to_string(),
        })
}

/// Writes the state atomically (temp file + rename).
pub fn save(plan: &Plan, state: &State) -> Result<(), PlaygroundError> {
    let path = path(plan);
    let text = serde_json::to_string_pretty(state).map_err(|e| PlaygroundError::State {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_atomic(&path, &text)
}

pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), PlaygroundError> {
    let staging = path.with_extension("staging");
    std::fs::write(&staging, text).map_err(|e| PlaygroundError::file(&staging, e))?;
    std::fs::rename(&staging, path).map_err(|e| PlaygroundError::file(path, e))
}

/// Whether process `pid` is alive (a zombie or a dead pid is not).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state is the field after ") ".
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .is_some_and(|s| s != 'Z' && s != 'X')
}
