//! Process helpers against stand-in programs (the agent itself is tested by the binary crate).

use std::time::Duration;

use edgemesh_testkit::netns::{Netns, require_root};
use edgemesh_testkit::process::Process;

#[test]
fn process_logs_are_captured_and_waited_for() {
    let mut p = Process::start(
        "sh",
        &["-c", "echo starting; echo oops >&2; sleep 30"],
        None,
    )
    .unwrap();
    let line = p.wait_for_log("oops", Duration::from_secs(5)).unwrap();
    assert_eq!(line, "oops");
    assert!(p.logs().contains("starting"));
    let status = p.terminate(Duration::from_secs(5)).unwrap();
    assert!(!status.success());
}

#[test]
fn process_wait_for_log_fails_with_the_log_when_the_process_exits() {
    let mut p = Process::start("sh", &["-c", "echo bye; exit 3"], None).unwrap();
    let err = p
        .wait_for_log("never", Duration::from_secs(5))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exited") && err.contains("bye"), "{err}");
}

#[test]
fn process_wait_for_log_is_bounded() {
    let mut p = Process::start("sleep", &["30"], None).unwrap();
    let started = std::time::Instant::now();
    assert!(p.wait_for_log("never", Duration::from_millis(300)).is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A stand-in agent: a shell logs the admin line; the test answers `/readyz` once, on a
/// listener inside the namespace, so `wait_ready` must connect from inside it.
#[test]
fn process_netns_admin_endpoint_is_reached_from_inside_the_namespace() {
    require_root();
    let ns = Netns::new("proc").unwrap();
    let listener = ns.run(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let script =
        format!("echo 'INFO admin endpoint listening listen.addr={addr} extra=1'; sleep 30");
    let mut p = Process::start("sh", &["-c", &script], Some(&ns)).unwrap();
    assert_eq!(p.admin_addr(Duration::from_secs(5)).unwrap(), addr);
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf).unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nready")
            .unwrap();
    });
    p.wait_ready(Duration::from_secs(5)).unwrap();
    server.join().unwrap();
    // `ip netns exec` execs in place: the pid we hold is the program's own.
    assert!(ns.pids().unwrap().contains(&(p.pid() as i32)));
    p.kill().unwrap();
}
