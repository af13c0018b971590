use super::*;

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
---
";

/// The Services of a relist, in its order.
fn relisted_services(dir: &ManifestsDir) -> Vec<std::sync::Arc<edgemesh_model::ServiceSpec>> {
    dir.relist_events()
        .into_iter()
        .filter_map(|e| match e {
            SourceEvent::Relist(_, ResourceKind::Service, items) => Some(items),
            _ => None,
        })
        .flatten()
        .filter_map(|r| match r {
            Resource::Service(spec) => Some(spec),
            _ => None,
        })
        .collect()
}

fn services(dir: &ManifestsDir) -> Vec<String> {
    relisted_services(dir)
        .iter()
        .map(|spec| spec.key.to_string())
        .collect()
}

#[test]
fn add_change_remove_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = ManifestsDir::new(tmp.path());
    assert!(!dir.rescan().unwrap());
    assert_eq!(
        dir.relist_events().len(),
        ResourceKind::ALL.len(),
        "every kind is listed"
    );

    std::fs::write(tmp.path().join("a.yaml"), SERVICE).unwrap();
    assert!(dir.rescan().unwrap());
    assert_eq!(services(&dir), ["ns/web"]);
    assert!(!dir.rescan().unwrap(), "unchanged files are not re-read");

    std::fs::write(
        tmp.path().join("a.yaml"),
        SERVICE.replace("name: web", "name: web2"),
    )
    .unwrap();
    assert!(dir.rescan().unwrap());
    assert_eq!(services(&dir), ["ns/web2"]);

    std::fs::remove_file(tmp.path().join("a.yaml")).unwrap();
    assert!(dir.rescan().unwrap());
    assert!(services(&dir).is_empty());
}

#[test]
fn a_broken_file_keeps_its_last_content_and_others_still_load() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = ManifestsDir::new(tmp.path());
    std::fs::write(tmp.path().join("a.yaml"), SERVICE).unwrap();
    dir.rescan().unwrap();
    std::fs::write(tmp.path().join("a.yaml"), "kind: Service\n  bad: [indent\n").unwrap();
    std::fs::write(
        tmp.path().join("b.yaml"),
        SERVICE.replace("name: web", "name: other"),
    )
    .unwrap();
    assert!(dir.rescan().unwrap());
    let mut names = services(&dir);
    names.sort();
    assert_eq!(names, ["ns/other", "ns/web"]);
}

#[test]
fn yaml_errors_name_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Service\nmetadata: {name: [x\n",
    )
    .unwrap();
    let err = read_file(&path, Inputs::Agent).unwrap_err();
    assert!(err.contains("line"), "{err}");
}

#[test]
fn hidden_and_foreign_files_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(".a.yaml.swp"), SERVICE).unwrap();
    std::fs::write(tmp.path().join("notes.txt"), SERVICE).unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::write(tmp.path().join("sub/x.yml"), SERVICE).unwrap();
    let mut dir = ManifestsDir::new(tmp.path());
    dir.rescan().unwrap();
    assert_eq!(services(&dir), ["ns/web"]);
}

#[test]
fn one_file_may_hold_more_than_the_parsers_default_1024_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let text: String = (0..1_200)
        .map(|i| {
            SERVICE
                .replace("name: web", &format!("name: web-{i}"))
                .replace("10.96.0.10", &format!("10.96.{}.{}", i / 250, i % 250 + 1))
        })
        .collect();
    std::fs::write(tmp.path().join("many.yaml"), text).unwrap();
    let mut dir = ManifestsDir::new(tmp.path());
    dir.rescan().unwrap();
    assert_eq!(services(&dir).len(), 1_200);
}

#[test]
fn alias_bombs_are_still_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..12 {
        let prev = (b'a' + level - 1) as char;
        let name = (b'a' + level) as char;
        bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let path = tmp.path().join("bomb.yaml");
    std::fs::write(&path, bomb).unwrap();
    assert!(read_file(&path, Inputs::Agent).is_err());
}

/// `ln -s . loop` three times made each rescan walk 3^8 directories and stalled the agent; each
/// directory is now entered once, and the loop is reported (once) as skipped.
#[test]
fn symlink_loops_are_entered_once() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.yaml"), SERVICE).unwrap();
    for i in 0..3 {
        std::os::unix::fs::symlink(".", tmp.path().join(format!("loop{i}"))).unwrap();
    }
    let mut dir = ManifestsDir::new(tmp.path());
    let started = std::time::Instant::now();
    assert!(dir.rescan().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(services(&dir), ["ns/web"]);
    assert_eq!(dir.files.len(), 1, "{:?}", dir.files.keys());
    assert_eq!(
        dir.reported.len(),
        3,
        "each loop reported: {:?}",
        dir.reported
    );
    assert!(!dir.rescan().unwrap());
}

#[test]
fn special_files_are_skipped_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(tmp.path().join("a.yaml"), SERVICE).unwrap();
    let mut dir = ManifestsDir::new(tmp.path());
    assert!(dir.rescan().unwrap());
    assert_eq!(services(&dir), ["ns/web"]);
    assert!(dir.reported.contains(&fifo));
}

/// A file rewritten in place (truncated, then written) must not be read in between: its
/// services would vanish from the Snapshot for a moment.
#[test]
fn a_file_being_rewritten_keeps_its_content_until_it_is_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a.yaml");
    std::fs::write(&file, SERVICE).unwrap();
    let quiet = Duration::from_millis(300);
    let mut dir = ManifestsDir::new(tmp.path()).settling(quiet);
    std::thread::sleep(quiet);
    assert!(dir.rescan().unwrap());
    assert_eq!(services(&dir), ["ns/web"]);
    // Truncated: the writer has not written the new content yet; even a writer paused longer
    // than the quiet period (a busy machine) does not drop the services.
    std::fs::write(&file, "").unwrap();
    assert!(!dir.rescan().unwrap());
    assert!(dir.deferred());
    std::thread::sleep(quiet * 2);
    assert!(!dir.rescan().unwrap());
    assert_eq!(services(&dir), ["ns/web"], "read half-written");
    std::fs::write(&file, SERVICE.replace("name: web", "name: web2")).unwrap();
    std::thread::sleep(quiet);
    assert!(dir.rescan().unwrap());
    assert!(!dir.deferred());
    assert_eq!(services(&dir), ["ns/web2"]);
}

#[test]
fn a_file_that_is_not_utf8_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("a.yaml"),
        b"kind: Service\nmetadata: {name: \xff\xfe}\n",
    )
    .unwrap();
    let error = read_file(&tmp.path().join("a.yaml"), Inputs::Agent).unwrap_err();
    assert!(
        error.contains("not UTF-8 text: invalid byte at offset 31"),
        "{error}"
    );
    // Across the reader's 64 KiB chunks too: a valid multi-byte character on the boundary.
    let mut text = "#".repeat(64 * 1024 - 1).into_bytes();
    text.extend_from_slice("é\n".as_bytes());
    text.extend_from_slice(b"x: \xff\n");
    std::fs::write(tmp.path().join("b.yaml"), &text).unwrap();
    let error = read_file(&tmp.path().join("b.yaml"), Inputs::Agent).unwrap_err();
    assert!(
        error.contains(&format!("offset {}", 64 * 1024 + 5)),
        "{error}"
    );
}

/// An emptied file is read once it has been left alone long enough: emptying a file is a way to
/// remove its services too.
#[test]
fn a_file_left_empty_is_read_in_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a.yaml");
    std::fs::write(&file, SERVICE).unwrap();
    let quiet = Duration::from_millis(50);
    let mut dir = ManifestsDir::new(tmp.path()).settling(quiet);
    std::thread::sleep(quiet);
    assert!(dir.rescan().unwrap());
    std::fs::write(&file, "").unwrap();
    std::thread::sleep(quiet * EMPTIED_QUIET_FACTOR + quiet);
    assert!(dir.rescan().unwrap());
    assert!(services(&dir).is_empty());
}

/// The kinds (with how many objects each) the relist reports.
fn relisted(dir: &ManifestsDir) -> Vec<(ResourceKind, usize)> {
    dir.relist_events()
        .into_iter()
        .filter_map(|e| match e {
            SourceEvent::Relist(_, kind, items) => Some((kind, items.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn ingress_objects_are_read_for_the_gateway_only() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("tls.yaml"),
        include_str!("../../../tests/fixtures/gateway-tls.yaml"),
    )
    .unwrap();
    let mut agent = ManifestsDir::new(tmp.path());
    agent.rescan().unwrap();
    let kinds = relisted(&agent);
    assert_eq!(kinds.len(), ResourceKind::ALL.len());
    assert!(
        kinds
            .iter()
            .all(|(k, n)| !ResourceKind::INGRESS.contains(k) && *n == 0),
        "{kinds:?}"
    );

    let mut gateway = ManifestsDir::new(tmp.path()).reading(Inputs::Gateway);
    gateway.rescan().unwrap();
    let kinds = relisted(&gateway);
    assert_eq!(
        kinds.len(),
        ResourceKind::ALL.len() + ResourceKind::INGRESS.len()
    );
    // The fixture holds no Pod: Pods are read for subsets only, and are listed (zero of them).
    assert!(kinds.contains(&(ResourceKind::Pod, 0)), "{kinds:?}");
    for kind in ResourceKind::INGRESS
        .into_iter()
        .filter(|k| *k != ResourceKind::Pod)
    {
        assert!(
            kinds.contains(&(kind, 1)),
            "one {kind} (the Opaque password Secret is not one): {kinds:?}"
        );
    }
}

/// The Service specs of a relist, by name.
fn service_specs(
    dir: &ManifestsDir,
) -> BTreeMap<String, std::sync::Arc<edgemesh_model::ServiceSpec>> {
    relisted_services(dir)
        .into_iter()
        .map(|spec| (spec.key.name.to_string(), spec))
        .collect()
}

/// A rewritten file's unchanged objects keep the specs read before (the ones the catalog got
/// from the earlier relist), so the source and the catalog hold one copy; a changed object gets
/// its new spec, and a relist never copies a spec.
#[test]
fn a_rewritten_file_shares_the_specs_of_its_unchanged_objects() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a.yaml");
    let two = format!("{SERVICE}{}", SERVICE.replace("name: web", "name: db"));
    std::fs::write(&file, &two).unwrap();
    let mut dir = ManifestsDir::new(tmp.path());
    assert!(dir.rescan().unwrap());
    let before = service_specs(&dir);
    assert_eq!(before.keys().collect::<Vec<_>>(), ["db", "web"]);
    let again = service_specs(&dir);
    for (name, spec) in &before {
        assert!(
            std::sync::Arc::ptr_eq(spec, &again[name]),
            "{name} copied by a relist"
        );
    }

    // db's port changes, web stays; a longer file, so the stamp differs for sure.
    std::fs::write(&file, two.replace("name: db, namespace: ns}\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80}]", "name: db, namespace: ns}\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 8080}]")).unwrap();
    assert!(dir.rescan().unwrap());
    let after = service_specs(&dir);
    assert!(
        std::sync::Arc::ptr_eq(&before["web"], &after["web"]),
        "web unchanged, shared"
    );
    assert!(
        !std::sync::Arc::ptr_eq(&before["db"], &after["db"]),
        "db changed, new spec"
    );
    assert_eq!(after["db"].ports[0].port, 8080);
}
