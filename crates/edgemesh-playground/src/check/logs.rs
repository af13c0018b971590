//! What the agents and the gateway logged at WARN or ERROR while the checks ran: printed under
//! the table when a check failed, because the playground (and with it every log) is removed
//! right after `check` in `scripts/demo.sh` and CI, and a bare "HTTP 503" says nothing about the
//! cause (the gateway's log named it: "no LAN address and no relay connected").

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::state::State;

/// Lines kept per process: the last ones are nearest the failure.
const LINES_PER_PROCESS: usize = 5;
/// Longest line shown (a libp2p dial error lists every address it tried).
const LINE_CHARS: usize = 400;

/// Where each agent's and the gateway's log ended before the checks.
#[derive(Debug, Clone)]
pub struct LogMarks(Vec<(String, PathBuf, u64)>);

/// The WARN and ERROR lines one process logged during the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedDuring {
    pub process: String,
    pub lines: Vec<String>,
}

impl LogMarks {
    /// The current end of every log of `state` but the pods'.
    pub fn take(state: &State) -> LogMarks {
        let marks = state
            .processes
            .iter()
            .filter(|p| !p.name.starts_with("pod/"))
            .map(|p| {
                let len = std::fs::metadata(&p.log).map_or(0, |m| m.len());
                (p.name.clone(), p.log.clone(), len)
            })
            .collect();
        LogMarks(marks)
    }

    /// The WARN/ERROR lines written since [`LogMarks::take`], per process that wrote any.
    pub fn since(&self) -> Vec<LoggedDuring> {
        self.0
            .iter()
            .filter_map(|(process, path, from)| {
                let lines = warnings(&read_from(path, *from));
                (!lines.is_empty()).then(|| LoggedDuring {
                    process: process.clone(),
                    lines,
                })
            })
            .collect()
    }
}

/// The log from byte `from` on (empty when it cannot be read: this is a diagnosis aid only).
fn read_from(path: &PathBuf, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path)
        && file.seek(SeekFrom::Start(from)).is_ok()
    {
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_ok() {
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// The last [`LINES_PER_PROCESS`] WARN/ERROR lines of `log`, each cut to [`LINE_CHARS`].
fn warnings(log: &str) -> Vec<String> {
    let matching: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let skip = matching.len().saturating_sub(LINES_PER_PROCESS);
    matching
        .into_iter()
        .skip(skip)
        .map(|l| l.chars().take(LINE_CHARS).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_warnings_and_errors_are_kept() {
        let mut log = String::from("2026 INFO a: started\n");
        for i in 0..7 {
            log.push_str(&format!("2026  WARN x: warning {i}\n"));
        }
        log.push_str("2026 ERROR y: broke\n2026 INFO a: fine\n");
        let kept = warnings(&log);
        assert_eq!(kept.len(), LINES_PER_PROCESS);
        assert!(kept[0].ends_with("warning 3"), "{kept:?}");
        assert!(kept[4].ends_with("broke"), "{kept:?}");
    }

    #[test]
    fn only_what_was_written_after_the_mark_counts() {
        let dir = std::env::temp_dir().join(format!("emp-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.log");
        std::fs::write(&path, "t  WARN before the checks\n").unwrap();
        let marks = LogMarks(vec![("agent/a".into(), path.clone(), 26)]);
        assert!(marks.since().is_empty());
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("t  WARN during the checks\n");
        std::fs::write(&path, text).unwrap();
        let logged = marks.since();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            logged,
            vec![LoggedDuring {
                process: "agent/a".into(),
                lines: vec!["t  WARN during the checks".into()],
            }]
        );
    }
}
