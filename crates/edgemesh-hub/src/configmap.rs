//! `cache_agents` from ConfigMap `kube-system/edge-hub-cfg`, polled while online (a poll needs no
//! watch bookkeeping and an edge node can afford one small GET every few seconds). The last value
//! seen is persisted in the cache directory so an offline restart keeps caching the same clients.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode, header};
use http_body_util::BodyExt;

use crate::agents::AgentList;
use crate::state::State;
use crate::upstream::empty_body;

/// Where the last `cache_agents` value seen is kept.
pub fn persisted_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(".edgemesh-hub").join("cache_agents")
}

pub fn load_persisted(cache_dir: &Path) -> AgentList {
    std::fs::read_to_string(persisted_path(cache_dir))
        .map(|text| AgentList::parse(&text))
        .unwrap_or_default()
}

/// What one poll found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Agents(AgentList),
    /// The ConfigMap does not exist: only `--cache-agents` applies.
    Absent,
    Unknown,
}

pub async fn run(state: Arc<State>, namespace: String, name: String, every: Duration) {
    let path = format!("/api/v1/namespaces/{namespace}/configmaps/{name}");
    loop {
        if let Some(index) = state.health.pick() {
            let found = poll(&state, index, &path).await;
            apply(&state, found);
        }
        tokio::time::sleep(every).await;
    }
}

fn apply(state: &State, found: Found) {
    let list = match found {
        Found::Agents(list) => list,
        Found::Absent => AgentList::default(),
        Found::Unknown => return,
    };
    let rendered = list.render();
    if state.agents.set_config_map(list) {
        tracing::info!(cache_agents = %rendered, "cache_agents from the ConfigMap changed");
        let path = persisted_path(state.cache.root());
        if let Err(e) = crate::store::write_atomic(&path, rendered.as_bytes()) {
            tracing::warn!(path = %path.display(), error = %e, "cannot persist cache_agents");
        }
    }
}

async fn poll(state: &State, index: usize, path: &str) -> Found {
    let Ok(uri) = state.upstreams[index].uri(path) else {
        return Found::Unknown;
    };
    let mut builder = Request::get(uri).header(header::ACCEPT, "application/json");
    if let Some(token) = state.own_token.header() {
        builder = builder.header(header::AUTHORIZATION, token);
    }
    let Ok(request) = builder.body(empty_body()) else {
        return Found::Unknown;
    };
    let timeout = state.health.config().timeout;
    let Ok(Ok(response)) =
        tokio::time::timeout(timeout, state.clients.pooled.request(request)).await
    else {
        return Found::Unknown;
    };
    let status = response.status();
    let Ok(Ok(body)) = tokio::time::timeout(timeout, response.into_body().collect()).await else {
        return Found::Unknown;
    };
    parse(status, &body.to_bytes())
}

fn parse(status: StatusCode, body: &[u8]) -> Found {
    if status == StatusCode::NOT_FOUND {
        return Found::Absent;
    }
    if !status.is_success() {
        tracing::debug!(%status, "reading the hub ConfigMap failed");
        return Found::Unknown;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Found::Unknown;
    };
    let text = value
        .pointer("/data/cache_agents")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    Found::Agents(AgentList::parse(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let cm = br#"{"kind":"ConfigMap","data":{"cache_agents":"kubectl,edge-app"}}"#;
        assert_eq!(
            parse(StatusCode::OK, cm),
            Found::Agents(AgentList::parse("edge-app,kubectl"))
        );
        assert_eq!(
            parse(StatusCode::OK, br#"{"data":{}}"#),
            Found::Agents(AgentList::default())
        );
        assert_eq!(parse(StatusCode::NOT_FOUND, b""), Found::Absent);
        assert_eq!(parse(StatusCode::FORBIDDEN, b""), Found::Unknown);
        assert_eq!(parse(StatusCode::OK, b"garbage"), Found::Unknown);
    }
}
