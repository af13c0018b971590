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

fn services(dir: &ManifestsDir) -> Vec<String> {
    dir.relist_events()
        .into_iter()
        .filter_map(|e| match e {
            SourceEvent::Relist(_, ResourceKind::Service, items) => Some(items),
            _ => None,
        })
        .flatten()
        .map(|r| r.reference().key.to_string())
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
    let err = read_file(&path).unwrap_err();
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
