//! The namespace guard against the real kernel (needs root).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use edgemesh_testkit::netns::{Netns, cleanup_stale, list_netns, require_root};

#[test]
fn netns_is_created_with_lo_up_and_deleted_on_drop() {
    require_root();
    let ns = Netns::new("t").unwrap();
    let name = ns.name().to_owned();
    assert!(list_netns().unwrap().contains(&name));
    let lo = ns.exec_ok("ip", &["-o", "link", "show", "lo"]).unwrap();
    assert!(lo.contains("UP"), "lo is not up: {lo}");
    drop(ns);
    assert!(!list_netns().unwrap().contains(&name));
    assert!(!Path::new(&format!("/run/netns/{name}")).exists());
}

#[test]
fn netns_exec_ok_names_the_failing_command() {
    require_root();
    let ns = Netns::new("t").unwrap();
    let err = ns
        .exec_ok("ip", &["link", "show", "nosuchdev"])
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("nosuchdev") && text.contains(ns.name()),
        "{text}"
    );
}

#[test]
fn netns_run_creates_sockets_inside_the_namespace() {
    require_root();
    let ns = Netns::new("t").unwrap();
    let listener = ns.run(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let client = ns.run(move || {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        conn.write_all(b"ping").unwrap();
        conn
    });
    let (mut accepted, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    accepted
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4];
    accepted.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    // `ss` inside the namespace sees the listener.
    let ss = ns.exec_ok("ss", &["-ltn"]).unwrap();
    assert!(ss.contains(&addr.port().to_string()), "{ss}");
}

#[test]
fn netns_drop_kills_processes_left_inside() {
    require_root();
    let ns = Netns::new("t").unwrap();
    let mut child = ns.command("sleep").arg("30").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ns.pids().unwrap().len(), 1);
    drop(ns);
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[test]
fn netns_is_deleted_when_a_test_panics() {
    require_root();
    let name = std::panic::catch_unwind(|| {
        let ns = Netns::new("t").unwrap();
        let name = ns.name().to_owned();
        std::panic::panic_any(name);
    })
    .unwrap_err();
    let name = name.downcast::<String>().unwrap();
    assert!(!list_netns().unwrap().contains(&name));
}

#[test]
fn netns_cleanup_stale_removes_namespaces_of_dead_processes() {
    require_root();
    // pid 4194304 is above the kernel's maximum pid: certainly dead.
    let stale = "em-stale-4194304-0";
    let out = std::process::Command::new("ip")
        .args(["netns", "add", stale])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mine = Netns::new("stale").unwrap();
    let deleted = cleanup_stale("em-stale-").unwrap();
    assert_eq!(deleted, vec![stale.to_owned()]);
    assert!(list_netns().unwrap().contains(&mine.name().to_owned()));
}
