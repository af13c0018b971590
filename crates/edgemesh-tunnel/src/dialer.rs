//! [`TunnelDialer`]: the proxy's [`Dialer`] that sends traffic for endpoints on other nodes
//! through the tunnel and everything else to an inner (direct) dialer.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_model::{Backend, Frontend, Protocol};
use edgemesh_proxy::{DatagramChannel, DatagramDial, Dialer, Upstream};
use futures::future::BoxFuture;

use crate::{TunnelHandle, UdpTunnel};

/// Where a backend is dialled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Direct,
    Tunnel,
}

/// Pure routing rule: an endpoint on this node, or with no node name, is dialled directly.
pub fn route(backend: &Backend, me: &str) -> Route {
    if backend.is_local_to(me) {
        Route::Direct
    } else {
        Route::Tunnel
    }
}

/// Dials local endpoints with `inner` and remote ones through the tunnel.
#[derive(Debug, Clone)]
pub struct TunnelDialer<D> {
    inner: D,
    tunnel: TunnelHandle,
    me: Arc<str>,
}

impl<D: Dialer> TunnelDialer<D> {
    pub fn new(inner: D, tunnel: TunnelHandle) -> Self {
        let me = tunnel.node_name().to_owned();
        Self::on_node(inner, tunnel, &me)
    }

    /// For a tunnel peer that is not its node's agent (the gateway, peer `<node>-gateway`):
    /// endpoints on `node` are dialed directly.
    pub fn on_node(inner: D, tunnel: TunnelHandle, node: &str) -> Self {
        TunnelDialer {
            inner,
            tunnel,
            me: Arc::from(node),
        }
    }
}

/// Where the route is chosen, the bound is too: a direct dial is the inner dialer's, all of it
/// within the connect timeout; a tunnel open first queues for one of the peer's stream slots
/// (back-pressure, bounded by the tunnel), and only its work (reaching the peer, opening the
/// stream, the remote agent's dial) is bounded by the connect timeout (see [`Dialer`]).
impl<D: Dialer> Dialer for TunnelDialer<D> {
    fn dial<'a>(
        &'a self,
        backend: &'a Backend,
        frontend: &'a Frontend,
        connect_timeout: Duration,
    ) -> BoxFuture<'a, io::Result<Upstream>> {
        if route(backend, &self.me) == Route::Direct || frontend.protocol != Protocol::Tcp {
            return self.inner.dial(backend, frontend, connect_timeout);
        }
        Box::pin(async move {
            let node = backend.node_name.as_deref().unwrap_or_default();
            let stream = self
                .tunnel
                .open_tcp(node, backend.addr, Some(connect_timeout))
                .await?;
            Ok(Upstream::Stream(Box::new(stream)))
        })
    }

    /// UDP flows to endpoints on other nodes go through a framed tunnel flow.
    fn dial_udp(
        &self,
        backend: &Backend,
        _frontend: &Frontend,
        connect_timeout: Duration,
    ) -> Option<DatagramDial> {
        if route(backend, &self.me) == Route::Direct {
            return None;
        }
        let tunnel = self.tunnel.clone();
        let node = backend.node_name.as_deref().unwrap_or_default().to_owned();
        let target = backend.addr;
        Some(Box::pin(async move {
            let flow = tunnel
                .open_udp(&node, target, Some(connect_timeout))
                .await?;
            Ok(Box::new(flow) as Box<dyn DatagramChannel>)
        }))
    }
}

impl DatagramChannel for UdpTunnel {
    fn send(&self, datagram: &[u8]) -> bool {
        UdpTunnel::send(self, datagram)
    }

    fn recv(&self) -> BoxFuture<'_, Option<Vec<u8>>> {
        Box::pin(UdpTunnel::recv(self))
    }
}

#[cfg(test)]
mod tests {
    use edgemesh_model::ThinStr;

    use super::*;

    #[test]
    fn routes() {
        let b = |node: Option<&str>| Backend {
            addr: "10.244.0.5:80".parse().unwrap(),
            node_name: node.map(ThinStr::from),
        };
        let cases = [
            (None, Route::Direct),
            (Some("me"), Route::Direct),
            (Some("other"), Route::Tunnel),
        ];
        for (node, want) in cases {
            assert_eq!(route(&b(node), "me"), want, "{node:?}");
        }
    }
}
