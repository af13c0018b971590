//! Files on disk: atomic writes and the YurtHub layout
//! `<root>/<agent>/<resource>.<version>.<group>/<namespace>/<name>` (no namespace directory for
//! cluster-scoped objects).
//!
//! A write goes to a hidden temporary file in the same directory, is fsynced, renamed over the
//! target and the directory is fsynced: a reader (or the next start after a crash) sees the old
//! file or the new one, never a mix. Leftover temporary files are removed at start-up.
//!
//! The cache holds what the apiserver gave authorised clients (Secrets and ConfigMaps among
//! them): files are 0600 and directories 0700, readable by the hub's user only.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of temporary files; object names cannot start with a dot, so they never collide.
pub const TEMP_PREFIX: &str = ".tmp-";
/// Per-resource metadata (complete lists, accepted credentials).
pub const META_FILE: &str = ".edgemesh-meta.json";
/// Directory of cached discovery documents, per agent.
pub const DISCOVERY_DIR: &str = "_discovery";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically and durably, creating parent directories (0700, and the
/// parent made 0700 if it existed: the cache is private).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| invalid("path has no parent"))?;
    create_private_dir(dir)?;
    replace_file(dir, path, bytes)
}

/// Like [`write_atomic`] for a file outside the cache (the serving certificate and key): a
/// missing parent is created 0700, an existing one keeps its mode. The file is 0600.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| invalid("path has no parent"))?;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    replace_file(dir, path, bytes)
}

/// Temporary file in `dir`, fsync, rename over `path`, fsync `dir`.
fn replace_file(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| invalid("path has no file name"))?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{file_name}-{}-{n}",
        std::process::id()
    ));
    let result = write_and_rename(&temp, path, bytes);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    File::open(dir)?.sync_all()
}

fn write_and_rename(temp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, path)
}

/// Creates `dir` and its missing parents as 0700, and makes `dir` itself 0700 if it existed
/// (a cache root made by an earlier release was 0755).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Removes `path` (absent is fine) and fsyncs its directory.
pub fn remove_durable(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string())
}

/// A path component that is safe to use as a file or directory name: no separators, no dot
/// prefix (so `.`/`..` and our hidden files are impossible), printable, at most 253 bytes.
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '+'))
}

/// Where one object lives.
pub fn object_path(resource_dir: &Path, namespace: &str, name: &str) -> PathBuf {
    if namespace.is_empty() {
        resource_dir.join(name)
    } else {
        resource_dir.join(namespace).join(name)
    }
}

/// File name of a discovery document: the path with `/` as `_` (`/apis/apps/v1` → `apis_apps_v1`).
pub fn discovery_file_name(path: &str) -> Option<String> {
    let name = path.trim_matches('/').replace('/', "_");
    let name = if name.is_empty() {
        "root".to_string()
    } else {
        name
    };
    is_safe_component(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path().join("a/b")).unwrap().collect();
        assert_eq!(names.len(), 1);
        remove_durable(&path).unwrap();
        remove_durable(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn safe_components() {
        for ok in [
            "kubectl",
            "edge-app",
            "coredns",
            "web-1",
            "a.b",
            "system:node",
        ] {
            assert!(is_safe_component(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "x\0",
            &"a".repeat(300),
        ] {
            assert!(!is_safe_component(bad), "{bad}");
        }
    }

    #[test]
    fn discovery_names() {
        assert_eq!(
            discovery_file_name("/apis/apps/v1").as_deref(),
            Some("apis_apps_v1")
        );
        assert_eq!(discovery_file_name("/version").as_deref(), Some("version"));
        assert_eq!(discovery_file_name("/a b"), None);
    }
}
