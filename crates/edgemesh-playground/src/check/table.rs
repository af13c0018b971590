//! The result table: check, path, result, time, detail — plain text, aligned, readable in a
//! terminal and in a CI log.

use std::fmt::Write;

use super::{Outcome, Report};

/// The table and a summary line.
pub fn render(report: &Report) -> String {
    let rows: Vec<[String; 5]> = report
        .results
        .iter()
        .map(|r| {
            let (result, detail) = match &r.outcome {
                Outcome::Pass(d) => ("PASS".to_owned(), d.clone()),
                Outcome::Fail(d) => ("FAIL".to_owned(), d.clone()),
                Outcome::Skip(why) => (format!("SKIP ({why})"), String::new()),
            };
            let time = format!("{} ms", r.elapsed.as_millis());
            [r.name.clone(), r.path.clone(), result, time, detail]
        })
        .collect();
    let header = ["CHECK", "PATH", "RESULT", "TIME", "DETAIL"].map(str::to_owned);
    let widths: Vec<usize> = (0..4)
        .map(|c| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        for (c, width) in widths.iter().enumerate() {
            let cell = &row[c];
            let pad = width - cell.chars().count();
            let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
        }
        let _ = writeln!(out, "{}", row[4]);
    }
    let _ = writeln!(out, "{}", summary(report));
    for logged in &report.logged {
        let _ = writeln!(
            out,
            "{} warned during the checks (last lines):",
            logged.process
        );
        for line in &logged.lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// "29 passed, 0 failed, 8 skipped (needs tunnel: the agents run without it)".
pub fn summary(report: &Report) -> String {
    let mut line = format!(
        "{} checks: {} passed, {} failed, {} skipped",
        report.results.len(),
        report.passed(),
        report.failed(),
        report.skipped()
    );
    if report.skipped() > 0 && !report.tunnel {
        line.push_str(" (needs tunnel: the agents run without it today; see docs/playground.md)");
    }
    line
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::CheckResult;
    use super::*;

    fn row(name: &str, outcome: Outcome) -> CheckResult {
        CheckResult {
            name: name.into(),
            path: "edge-a2 → x".into(),
            outcome,
            elapsed: Duration::from_millis(12),
        }
    }

    #[test]
    fn table_aligns_columns_and_shows_every_outcome() {
        let report = Report {
            results: vec![
                row("TCP echo", Outcome::Pass("24 bytes".into())),
                row("UDP", Outcome::Fail("no echo".into())),
                row("WebSocket echo", Outcome::Skip("needs tunnel".into())),
            ],
            tunnel: false,
            logged: vec![super::super::logs::LoggedDuring {
                process: "gateway".into(),
                lines: vec!["t  WARN upstream failed: no relay connected".into()],
            }],
        };
        let text = render(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(lines[5], "gateway warned during the checks (last lines):");
        assert_eq!(lines[6], "  t  WARN upstream failed: no relay connected");
        let column = |l: &str| l.find("edge-a2").or_else(|| l.find("PATH"));
        assert!(
            lines[..4].iter().all(|l| column(l) == column(lines[0])),
            "{text}"
        );
        assert!(
            text.contains("PASS") && text.contains("FAIL") && text.contains("SKIP (needs tunnel)")
        );
        assert!(lines[4].starts_with("3 checks: 1 passed, 1 failed, 1 skipped (needs tunnel"));
    }
}
