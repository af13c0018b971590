//! The proxy's listeners as the agent starts them: bound before the first rule points at them,
//! serving only once the caller's `synced` resolves (during a takeover the predecessor's rules
//! already send connections here, and the kernel holds them in the backlog instead of the proxy
//! refusing services it does not know yet).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use edgemesh_host::SocketFactory;
use edgemesh_telemetry::Liveness;

use crate::error::ProxyError;
use crate::proxy::Proxy;
use crate::udp::TproxySocket;

/// Binds the transparent TCP listener on `port` of every address and serves it (watched by
/// `liveness`) once `synced` resolves. Returns the bound address.
pub fn listen_tcp(
    proxy: &Proxy,
    sockets: &dyn SocketFactory,
    port: u16,
    synced: impl Future<Output = ()> + Send + 'static,
    liveness: &Liveness,
) -> Result<SocketAddr, ProxyError> {
    let tcp_addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = sockets
        .tcp_bind(tcp_addr)
        .map_err(|error| ProxyError::Listen {
            addr: tcp_addr,
            error,
        })?;
    let serving = proxy.clone();
    liveness.spawn("tcp proxy", async move {
        synced.await;
        if let Err(e) = serving.serve_tcp(listener).await {
            tracing::error!(error = %e, "TCP proxy stopped");
        }
    });
    Ok(tcp_addr)
}

/// UDP needs TPROXY (either backend), the policy route for the TPROXY `mark` and a transparent
/// socket; without any of them UDP services are left alone (logged) and TCP still works.
/// Returns whether UDP on `port` is served (once `synced` resolves).
pub async fn listen_udp(
    proxy: &Proxy,
    sockets: &dyn SocketFactory,
    port: u16,
    mark: u32,
    synced: impl Future<Output = ()> + Send + 'static,
    liveness: &Liveness,
) -> bool {
    if let Err(e) = edgemesh_host::ensure_tproxy_route(mark).await {
        tracing::warn!(error = %format_args!("{e:#}"), "UDP services are not intercepted");
        return false;
    }
    let socket = match TproxySocket::bind(sockets, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::warn!(error = %e, "UDP services are not intercepted");
            return false;
        }
    };
    let serving = proxy.clone();
    liveness.spawn("udp proxy", async move {
        synced.await;
        if let Err(e) = serving.serve_udp(socket).await {
            tracing::error!(error = %e, "UDP proxy stopped");
        }
    });
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use edgemesh_host::HostSockets;
    use edgemesh_model::SnapshotCell;

    use super::*;
    use crate::config::ProxyConfig;
    use crate::dialer::DirectDialer;
    use crate::testing::FirstAvailable;

    fn proxy(sockets: &Arc<HostSockets>) -> Proxy {
        Proxy::new(
            ProxyConfig {
                sockets: sockets.clone(),
                ..ProxyConfig::default()
            },
            Arc::new(SnapshotCell::default()),
            Arc::new(FirstAvailable::new(Vec::new())),
            Arc::new(DirectDialer::new(sockets.clone())),
        )
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_that_names_the_port_and_the_way_out() {
        let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let sockets = Arc::new(HostSockets::default());
        let liveness = Liveness::default();
        let error = listen_tcp(&proxy(&sockets), &*sockets, port, async {}, &liveness)
            .unwrap_err()
            .to_string();
        let want = format!(
            "cannot listen on the transparent proxy port 0.0.0.0:{port} \
             (modules.edgeProxy.listenPort; if nothing else listens there, an outgoing \
             connection may hold it as its ephemeral port: see docs/troubleshooting.md): "
        );
        assert!(error.starts_with(&want), "{error}");
        assert_eq!(liveness.health().0, 200, "nothing was spawned");
    }

    #[tokio::test]
    async fn binding_does_not_wait_for_the_sources() {
        let sockets = Arc::new(HostSockets::default());
        let liveness = Liveness::default();
        let pending = std::future::pending::<()>();
        let addr = listen_tcp(&proxy(&sockets), &*sockets, 0, pending, &liveness).unwrap();
        assert_eq!(addr.ip(), Ipv4Addr::UNSPECIFIED);
        // The serving loop waits for `synced`: it is watched and alive.
        let (status, body) = liveness.health();
        assert_eq!(status, 200, "{body}");
    }
}
