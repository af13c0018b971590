//! What a check found, and the two ways it is printed: a table for people, JSON for scripts.

use std::fmt::Write;

use serde::Serialize;

/// The verdict of one check. Only `Fail` makes `edgemesh doctor` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    /// Nothing to check (the module is off, no hub configured).
    Skip,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the report: which check, its verdict, what was seen and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub message: String,
    /// Empty when there is nothing to do.
    pub fix: String,
}

impl Finding {
    pub fn new(check: &str, status: Status, message: impl Into<String>) -> Self {
        Self {
            check: check.to_owned(),
            status,
            message: message.into(),
            fix: String::new(),
        }
    }

    pub fn pass(check: &str, message: impl Into<String>) -> Self {
        Self::new(check, Status::Pass, message)
    }

    pub fn skip(check: &str, message: impl Into<String>) -> Self {
        Self::new(check, Status::Skip, message)
    }

    pub fn warn(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Status::Warn, message).with_fix(fix)
    }

    pub fn fail(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Status::Fail, message).with_fix(fix)
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

/// Whether any finding failed.
pub fn any_failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Fail)
}

/// `-o json`: an array of `{check, status, message, fix}`.
pub fn json(findings: &[Finding]) -> String {
    serde_json::to_string_pretty(findings).unwrap_or_else(|_| "[]".to_owned())
}

/// The table: one row per finding, the fix on its own indented line below a non-passing row.
pub fn table(findings: &[Finding]) -> String {
    let width = findings
        .iter()
        .map(|f| f.check.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(out, "{:<4}  {:<width$}  MESSAGE", "", "CHECK");
    for f in findings {
        let _ = writeln!(
            out,
            "{}  {:<width$}  {}",
            f.status.label(),
            f.check,
            one_line(&f.message)
        );
        if !f.fix.is_empty() && f.status != Status::Pass {
            let _ = writeln!(out, "{:<4}  {:<width$}  fix: {}", "", "", one_line(&f.fix));
        }
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let _ = writeln!(
        out,
        "\n{} passed, {} warnings, {} failed, {} skipped",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        count(Status::Skip)
    );
    out
}

/// Messages carry text from the network (an apiserver's message, a body): one line each.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings() -> Vec<Finding> {
        vec![
            Finding::pass("dns.server", "answered"),
            Finding::fail(
                "rules.order",
                "kube-proxy first\nreally",
                "restart the agent",
            ),
        ]
    }

    #[test]
    fn json_is_an_array_of_check_status_message_fix() {
        let value: serde_json::Value = serde_json::from_str(&json(&findings())).unwrap();
        assert_eq!(value[1]["check"], "rules.order");
        assert_eq!(value[1]["status"], "FAIL");
        assert_eq!(value[1]["fix"], "restart the agent");
        assert_eq!(value[0]["fix"], "");
    }

    #[test]
    fn table_has_a_row_per_finding_and_the_fix_of_a_failure() {
        let text = table(&findings());
        assert!(text.contains("PASS  dns.server   answered"), "{text}");
        assert!(
            text.contains("FAIL  rules.order  kube-proxy first really"),
            "{text}"
        );
        assert!(text.contains("fix: restart the agent"), "{text}");
        assert!(
            text.contains("1 passed, 0 warnings, 1 failed, 0 skipped"),
            "{text}"
        );
        assert!(any_failed(&findings()));
    }
}
