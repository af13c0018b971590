//! A network-namespace guard and socket helpers for the real-kernel tests (a local stand-in
//! until `edgemesh_testkit::netns::Netns` lands).
#![allow(dead_code)]
// Test helpers: a failed set-up step should panic with its error.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use edgemesh_netfilter::{CommandRunner, SystemRunner};
use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Socket, Type};

/// Fails (never skips) when the test cannot manage namespaces and netfilter.
pub fn require_root() {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    let is_root = uid.is_ok_and(|out| String::from_utf8_lossy(&out).trim() == "0");
    assert!(
        is_root,
        "this test needs root (network namespaces and netfilter); run as root"
    );
}

/// A network namespace `em-nf-<pid>-<n>` with `lo` up, deleted on drop (also on panic).
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Self {
        require_root();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ns = Netns {
            name: format!("em-nf-{}-{n}", std::process::id()),
        };
        run("ip", &["netns", "add", &ns.name]);
        ns.exec("ip", &["link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace; panics with its stderr on failure.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        self.runner()
            .run(program, args, None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn runner(&self) -> Arc<dyn CommandRunner> {
        Arc::new(SystemRunner::in_netns(&self.name))
    }

    /// Runs `f` on a thread that has entered the namespace (sockets it opens live there).
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        let handle = std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns: {e}"));
            f()
        });
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) -> String {
    SystemRunner::new()
        .run(program, args, None)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Where a connection to `target` landed: the proxy listener (with its `SO_ORIGINAL_DST`) or the
/// listener standing in for the real destination. Must run inside the namespace.
#[derive(Debug, PartialEq, Eq)]
pub enum Landed {
    Proxy { original_dst: SocketAddr },
    Direct,
    Refused,
}

/// Connects to `target` (with `mark` on the client socket if non-zero) while `proxy` and
/// `direct` listen, and reports which accepted. Bounded to about two seconds.
pub fn connect_and_see(
    target: SocketAddr,
    mark: u32,
    proxy: &TcpListener,
    direct: &TcpListener,
) -> Landed {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    if mark != 0 {
        socket.set_mark(mark).unwrap();
    }
    if socket
        .connect_timeout(&target.into(), Duration::from_secs(2))
        .is_err()
    {
        return Landed::Refused;
    }
    let _client: TcpStream = socket.into();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok((stream, _)) = proxy.accept() {
            let original = Socket::from(stream).original_dst_v4().unwrap();
            return Landed::Proxy {
                original_dst: original.as_socket().unwrap(),
            };
        }
        if direct.accept().is_ok() {
            return Landed::Direct;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("connected to {target} but neither listener accepted within 2 s");
}

/// A non-blocking listener on `addr`.
pub fn listen(addr: &str) -> TcpListener {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    listener.set_nonblocking(true).unwrap();
    listener
}
