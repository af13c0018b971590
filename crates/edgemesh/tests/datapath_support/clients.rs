//! Real clients run inside the node namespace (or another host's), each bounded by coreutils
//! `timeout`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use edgemesh_testkit::topology::Host;

use super::{Cluster, PYTHON};

/// Hard bound of one client process.
const CLIENT_LIMIT: Duration = Duration::from_secs(10);

/// What a client printed, or why it failed (exit status and stderr).
pub type Answer = Result<String, String>;

impl Cluster {
    /// Runs `program args` in the node namespace under `timeout`, feeding `input` on stdin.
    pub fn client(&self, program: &str, args: &[&str], input: &[u8]) -> Answer {
        client_on(&self.node, program, args, input)
    }

    /// [`Cluster::client`] with its own bound, for a client that runs longer than most.
    pub fn client_for(&self, limit: Duration, program: &str, args: &[&str]) -> Answer {
        bounded_client_on(&self.node, limit, program, args, b"")
    }

    /// `curl -sS URL` (HTTP or HTTPS with `-k`), extra args first; the trimmed body.
    pub fn curl(&self, url: &str, extra: &[&str]) -> Answer {
        curl_on(&self.node, url, extra)
    }

    /// `n` requests to `url` from ONE curl process, each on a new connection (the servers
    /// close after every answer): the answers in order, one line each.
    pub fn curl_many(&self, url: &str, n: usize, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["-sS", "--max-time", "5", "-H", "Connection: close"];
        args.extend_from_slice(extra);
        args.extend(std::iter::repeat_n(url, n));
        let body = self
            .client("curl", &args, b"")
            .unwrap_or_else(|e| panic!("{n} requests to {url}: {e}"));
        let answers: Vec<String> = body.lines().map(String::from).collect();
        assert_eq!(answers.len(), n, "one answer per request: {body}");
        answers
    }

    /// A TCP echo round trip with ncat: sends `message`, half-closes, reads until EOF.
    pub fn tcp_echo(&self, ip: &str, port: u16, message: &str) -> Answer {
        let port = port.to_string();
        self.client("ncat", &["-w", "3", ip, &port], message.as_bytes())
    }

    /// One UDP datagram and its echo (python, 2 s receive timeout); prints `reply from`.
    pub fn udp_echo(&self, ip: &str, port: u16, message: &str) -> Answer {
        udp_echo_on(&self.node, ip, port, message)
    }

    /// A WebSocket round trip (python websockets client): the echoed message.
    pub fn ws_echo(&self, ip: &str, port: u16, message: &str) -> Answer {
        let script = "import asyncio,sys,websockets\n\
             async def main():\n\
             \x20   async with websockets.connect(sys.argv[1], open_timeout=3) as ws:\n\
             \x20       await ws.send(sys.argv[2])\n\
             \x20       print(await asyncio.wait_for(ws.recv(), 3))\n\
             asyncio.run(main())\n";
        let url = format!("ws://{ip}:{port}/");
        self.client(PYTHON, &["-c", script, &url, message], b"")
            .map(|out| out.trim().to_string())
    }
}

/// Runs `program args` in `host`'s namespace under `timeout`, feeding `input` on stdin.
pub fn client_on(host: &Host, program: &str, args: &[&str], input: &[u8]) -> Answer {
    bounded_client_on(host, CLIENT_LIMIT, program, args, input)
}

/// [`client_on`] under `limit` instead of [`CLIENT_LIMIT`].
fn bounded_client_on(
    host: &Host,
    limit: Duration,
    program: &str,
    args: &[&str],
    input: &[u8],
) -> Answer {
    let limit = limit.as_secs().to_string();
    let mut cmd: Command = host.command("timeout");
    cmd.arg(&limit).arg(program).args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("client stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("client output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{program} {args:?}: {} (stdout {stdout:?}) stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `curl -sS URL` in `host` (HTTP or HTTPS with `-k`), extra args first; the trimmed body.
pub fn curl_on(host: &Host, url: &str, extra: &[&str]) -> Answer {
    let mut args = vec!["-sS", "-k", "--max-time", "5", "--connect-timeout", "3"];
    args.extend_from_slice(extra);
    args.push(url);
    client_on(host, "curl", &args, b"").map(|body| body.trim().to_string())
}

/// One UDP datagram from `host` and its echo (python, 2 s receive timeout); prints
/// `reply from`.
pub fn udp_echo_on(host: &Host, ip: &str, port: u16, message: &str) -> Answer {
    let script = "import socket,sys\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
         s.settimeout(2)\n\
         s.sendto(sys.argv[3].encode(),(sys.argv[1],int(sys.argv[2])))\n\
         data,peer=s.recvfrom(65535)\n\
         print(data.decode(),'from',peer[0]+':'+str(peer[1]))\n";
    let port = port.to_string();
    client_on(host, PYTHON, &["-c", script, ip, &port, message], b"")
        .map(|out| out.trim().to_string())
}
