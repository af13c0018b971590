//! `edgemesh playground check`: runs [`catalog::catalog`] from the client nodes (one thread per
//! node, inside its namespace) and reports a table. Checks that need the tunnel are SKIP while
//! the agents run without it — shown, never counted as PASS.

pub mod catalog;
pub mod logs;
mod probe;
pub mod table;
pub mod verdict;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::PlaygroundError;
use crate::host::require_root;
use crate::plan::Plan;
use crate::state;
use catalog::Check;

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    /// Not run, and why (e.g. "needs tunnel").
    Skip(String),
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    pub path: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Every result, in table order.
#[derive(Debug, Clone)]
pub struct Report {
    pub results: Vec<CheckResult>,
    pub tunnel: bool,
    /// When a check failed: what the agents and the gateway warned about meanwhile.
    pub logged: Vec<logs::LoggedDuring>,
}

impl Report {
    fn count(&self, want: fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| want(&r.outcome)).count()
    }
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass(_)))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip(_)))
    }
}

/// Runs every check against the playground of `plan`.
pub fn check(plan: &Plan) -> Result<Report, PlaygroundError> {
    require_root()?;
    let state = state::load(plan)?.ok_or_else(|| PlaygroundError::NotUp(state::path(plan)))?;
    let checks = catalog::catalog(&crate::manifests::services()?);
    let mut by_node: BTreeMap<&str, Vec<(usize, &Check)>> = BTreeMap::new();
    for (i, c) in checks.iter().enumerate() {
        by_node.entry(c.from.name).or_default().push((i, c));
    }
    let marks = logs::LogMarks::take(&state);
    let mut rows: Vec<Option<CheckResult>> = vec![None; checks.len()];
    let per_node = std::thread::scope(|scope| {
        let handles: Vec<_> = by_node
            .iter()
            .map(|(node, list)| {
                let ns = plan.netns(node);
                let tunnel = state.tunnel;
                scope.spawn(move || crate::netns::run_in(&ns, || run_node(list, tunnel)))
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    for joined in per_node {
        let results = match joined {
            Ok(results) => results?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        for (i, result) in results {
            rows[i] = Some(result);
        }
    }
    let results: Vec<CheckResult> = rows.into_iter().flatten().collect();
    let failed = results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Fail(_)));
    Ok(Report {
        results,
        tunnel: state.tunnel,
        logged: if failed { marks.since() } else { Vec::new() },
    })
}

/// Runs a node's checks in order (the thread is inside the node's namespace).
fn run_node(list: &[(usize, &Check)], tunnel: bool) -> Vec<(usize, CheckResult)> {
    list.iter()
        .map(|&(i, c)| {
            let started = Instant::now();
            let outcome = if c.needs_tunnel() && !tunnel {
                Outcome::Skip("needs tunnel".into())
            } else {
                match probe::run(c) {
                    Ok(detail) => Outcome::Pass(detail),
                    Err(reason) => Outcome::Fail(reason),
                }
            };
            let result = CheckResult {
                name: c.name(),
                path: c.path(),
                outcome,
                elapsed: started.elapsed(),
            };
            (i, result)
        })
        .collect()
}
