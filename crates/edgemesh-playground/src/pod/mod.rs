//! The pod programs (`edgemesh playground pod PROGRAM --name NAME --port PORT`): small servers
//! built into the binary so the playground needs no container runtime and no extra packages.
//! Each binds `0.0.0.0:PORT` in the node's namespace, prints [`READY`], and serves forever
//! with a thread per connection (bounded by read timeouts).

mod servers;
pub mod ws;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use crate::PlaygroundError;
use crate::pods::Program;

/// Printed once the socket is bound; `up` waits for it.
pub const READY: &str = "pod ready";

/// Runs `program` as pod `name` on `port` until killed.
pub fn run(program: Program, name: &str, port: u16) -> Result<(), PlaygroundError> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let bind_error = |e| PlaygroundError::Spawn {
        command: format!("pod {name}: bind {addr}"),
        error: e,
    };
    if program == Program::UdpEcho {
        let socket = UdpSocket::bind(addr).map_err(bind_error)?;
        announce(program, name, addr);
        return servers::udp_echo(&socket).map_err(bind_error);
    }
    let listener = TcpListener::bind(addr).map_err(bind_error)?;
    announce(program, name, addr);
    let name = name.to_owned();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let name = name.clone();
        std::thread::spawn(move || {
            let result = match program {
                Program::Hostname => servers::hostname(stream, &name),
                Program::TcpEcho => servers::tcp_echo(stream),
                Program::WsEcho => ws::serve(stream, &name),
                Program::UdpEcho => Ok(()),
            };
            if let Err(e) = result {
                eprintln!("pod {name}: connection ended: {e}");
            }
        });
    }
    Ok(())
}

fn announce(program: Program, name: &str, addr: SocketAddr) {
    println!("{READY}: {name} ({}) on {addr}", program.as_str());
}
