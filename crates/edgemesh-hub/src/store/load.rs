//! Start-up: read what a previous run left on disk. Temporary files of writes interrupted by a
//! crash are deleted; a file that does not parse as an object (which atomic writes make
//! impossible, but a disk can still lie) is deleted with a warning, never served.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::Resources;
use super::disk::{self, DISCOVERY_DIR, META_FILE, TEMP_PREFIX};
use super::resource::{CachedObject, Meta, ResourceCache};
use crate::request::ResourceKey;

pub struct Loaded {
    pub resources: Resources,
    pub discovery: HashMap<(String, String), Bytes>,
}

pub fn load(root: &Path) -> std::io::Result<Loaded> {
    let mut loaded = Loaded {
        resources: HashMap::new(),
        discovery: HashMap::new(),
    };
    for agent_dir in subdirectories(root)? {
        let Some(agent) = file_name(&agent_dir).filter(|a| disk::is_safe_component(a)) else {
            continue;
        };
        for dir in subdirectories(&agent_dir)? {
            let Some(name) = file_name(&dir) else {
                continue;
            };
            if name == DISCOVERY_DIR {
                load_discovery(&dir, &agent, &mut loaded.discovery)?;
            } else if let Some(key) = ResourceKey::from_dir_name(&name) {
                let cache = load_resource(&dir)?;
                loaded.resources.insert((agent.clone(), key), cache);
            }
        }
    }
    Ok(loaded)
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_string)
}

fn subdirectories(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn load_resource(dir: &Path) -> std::io::Result<ResourceCache> {
    let mut cache = ResourceCache {
        meta: read_meta(&dir.join(META_FILE)),
        ..ResourceCache::default()
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            for file in fs::read_dir(&path)? {
                load_object_file(&file?.path(), &mut cache)?;
            }
        } else {
            load_object_file(&path, &mut cache)?;
        }
    }
    Ok(cache)
}

fn read_meta(path: &Path) -> Meta {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable cache metadata");
            Meta::default()
        }),
        Err(_) => Meta::default(),
    }
}

fn load_object_file(path: &Path, cache: &mut ResourceCache) -> std::io::Result<()> {
    let Some(name) = file_name(path) else {
        return Ok(());
    };
    if name.starts_with(TEMP_PREFIX) {
        tracing::info!(path = %path.display(), "removing a file left by an interrupted write");
        return fs::remove_file(path);
    }
    if name.starts_with('.') {
        return Ok(());
    }
    let parsed = fs::read(path)
        .ok()
        .and_then(|bytes| CachedObject::from_bytes(bytes.into()))
        .filter(|o| o.name == name);
    match parsed {
        Some(object) => {
            cache.objects.insert(object.key(), Arc::new(object));
            Ok(())
        }
        None => {
            tracing::warn!(path = %path.display(), "removing a cache file that is not a complete object");
            fs::remove_file(path)
        }
    }
}

fn load_discovery(
    dir: &Path,
    agent: &str,
    out: &mut HashMap<(String, String), Bytes>,
) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = file_name(&path) else {
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            fs::remove_file(&path)?;
            continue;
        }
        let bytes = fs::read(&path)?;
        if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
            continue;
        }
        let request_path = if name == "root" {
            "/".to_string()
        } else {
            format!("/{}", name.replace('_', "/"))
        };
        out.insert((agent.to_string(), request_path), Bytes::from(bytes));
    }
    Ok(())
}
