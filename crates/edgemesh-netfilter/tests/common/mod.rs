//! The test kit's network namespace with the shorthands these tests use, and socket helpers
//! for the real-kernel tests.
#![allow(dead_code)]
// Test helpers: a failed set-up step should panic with its error.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgemesh_netfilter::{CommandRunner, SystemRunner};
pub use edgemesh_testkit::netns::require_root;
use socket2::{Domain, Socket, Type};

/// A network namespace with `lo` up, deleted on drop (also on panic). Fails (never skips)
/// without root.
#[derive(Debug)]
pub struct Netns(edgemesh_testkit::netns::Netns);

impl Netns {
    pub fn new() -> Self {
        require_root();
        Self(edgemesh_testkit::netns::Netns::new("nf").unwrap_or_else(|e| panic!("netns: {e}")))
    }

    /// The namespace's name, for `ip ... netns NAME`.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Runs a command inside the namespace; panics with its stderr on failure.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        self.0
            .exec_ok(program, args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the backends' commands inside the namespace.
    pub fn runner(&self) -> Arc<dyn CommandRunner> {
        Arc::new(SystemRunner::in_netns(self.0.name()))
    }

    /// Runs `f` on a thread that has entered the namespace (sockets it opens live there).
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.0.run(f)
    }
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
