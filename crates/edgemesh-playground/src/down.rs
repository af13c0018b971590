//! `edgemesh playground down`: removes every process, namespace (and with them every link,
//! bridge, route and NAT rule) and file of a prefix. It finds them by name, not only through
//! the state file, so it also cleans up after a crash; running it twice is safe.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::PlaygroundError;
use crate::host::{ip, list_netns, netns_pids, require_root};
use crate::plan::Plan;

/// Everything of a prefix that exists on the machine right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// (pid, namespace) of every process living in one of our namespaces.
    pub processes: Vec<(i32, String)>,
    pub namespaces: Vec<String>,
    /// `/etc/netns/<ns>` directories.
    pub netns_etc: Vec<PathBuf>,
    /// The state directory, when it exists.
    pub state_dir: Option<PathBuf>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
            && self.namespaces.is_empty()
            && self.netns_etc.is_empty()
            && self.state_dir.is_none()
    }
}

/// Finds what `plan`'s prefix left on the machine.
pub fn find(plan: &Plan) -> Result<Leftovers, PlaygroundError> {
    let namespaces: Vec<String> = list_netns()?
        .into_iter()
        .filter(|n| plan.owns_netns(n))
        .collect();
    let mut processes = Vec::new();
    for ns in &namespaces {
        processes.extend(netns_pids(ns)?.into_iter().map(|pid| (pid, ns.clone())));
    }
    let netns_etc = owned_entries(plan, Path::new("/etc/netns"));
    let dir = plan.state_dir();
    Ok(Leftovers {
        processes,
        namespaces,
        netns_etc,
        state_dir: dir.exists().then_some(dir),
    })
}

/// `down`: finds and removes; returns one line per thing removed (empty: nothing was there).
pub fn down(plan: &Plan, say: &mut dyn FnMut(&str)) -> Result<Vec<String>, PlaygroundError> {
    require_root()?;
    let leftovers = find(plan)?;
    remove(plan, &leftovers, say)
}

/// Removes `leftovers`: processes first (a namespace with processes would live on), then the
/// namespaces, then the files. Every step is attempted; the first error is returned at the end.
pub fn remove(
    plan: &Plan,
    leftovers: &Leftovers,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<String>, PlaygroundError> {
    let mut done = Vec::new();
    let mut first_error = None;
    let mut note = |line: String, say: &mut dyn FnMut(&str)| {
        say(&line);
        done.push(line);
    };
    let killed = kill_all(&leftovers.namespaces);
    if killed > 0 {
        note(format!("stopped {killed} processes (agents and pods)"), say);
    }
    for ns in &leftovers.namespaces {
        match ip(&["netns", "del", ns]) {
            Ok(_) => note(format!("deleted network namespace {ns}"), say),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut paths = leftovers.netns_etc.clone();
    paths.extend(leftovers.state_dir.clone());
    for path in paths {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => note(format!("removed {}", path.display()), say),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(PlaygroundError::file(&path, e));
            }
        }
    }
    // The shared root goes when the last prefix is gone (fails harmlessly while not empty).
    let _ = std::fs::remove_dir(plan.state_dir().parent().unwrap_or(Path::new("/")));
    // Same for /etc/netns, which `up` may have created.
    if !leftovers.netns_etc.is_empty() {
        let _ = std::fs::remove_dir("/etc/netns");
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// SIGKILLs every process in `namespaces`, a few rounds in case one was forking; returns how
/// many distinct pids were signalled.
fn kill_all(namespaces: &[String]) -> usize {
    let mut signalled = std::collections::HashSet::new();
    for _ in 0..5 {
        let pids: Vec<i32> = namespaces
            .iter()
            .flat_map(|ns| netns_pids(ns).unwrap_or_default())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // It may have exited meanwhile: nothing to do then.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            signalled.insert(pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signalled.len()
}

/// Entries of `dir` named like one of `plan`'s namespaces.
fn owned_entries(plan: &Plan, dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| plan.owns_netns(n)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}
