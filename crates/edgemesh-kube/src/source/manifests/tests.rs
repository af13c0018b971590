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
    assert!(read_file(&path).is_err());
}
