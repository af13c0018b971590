//! Balance and dial, with bounded retries: each failed endpoint is excluded from the next pick.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use edgemesh_lb::{Balancer, Destination, PickContext, Picked};
use edgemesh_model::{Frontend, Service, ServicePort};

use crate::ProxyError;
use crate::dialer::{Dialer, Upstream};
use crate::metrics::Metrics;

/// The routed service port a connection is for.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub frontend: &'a Frontend,
    pub service: &'a Service,
    pub port: &'a ServicePort,
    /// Backends this connection must not use (`externalTrafficPolicy: Local`).
    pub foreign: &'a [SocketAddr],
}

/// Who is asking, as the balancer needs it.
#[derive(Clone, Copy, Debug)]
pub struct Client<'a> {
    pub ip: IpAddr,
    pub http_header: Option<&'a str>,
}

/// Bounds of the dial loop.
#[derive(Clone, Copy, Debug)]
pub struct DialLimits {
    pub attempts: usize,
    /// Each dial's connect timeout, applied by the dialer to its own work ([`Dialer`]).
    pub timeout: Duration,
}

/// An open upstream and the balancer's lease on its backend (hold it for the connection).
#[derive(Debug)]
pub struct Connected {
    pub upstream: Upstream,
    pub picked: Picked,
}

/// Picks and dials until one endpoint answers, the port runs out of endpoints, or
/// `limits.attempts` dials have failed.
pub async fn dial_any(
    target: Target<'_>,
    client: Client<'_>,
    balancer: &dyn Balancer,
    dialer: &dyn Dialer,
    limits: DialLimits,
    metrics: &Metrics,
) -> Result<Connected, ProxyError> {
    // Foreign backends are excluded like failed ones; they do not count as failures.
    let mut failed: Vec<SocketAddr> = target.foreign.to_vec();
    let mut last_error: Option<(SocketAddr, io::Error)> = None;
    let to = Destination {
        frontend: target.frontend,
        service: target.service,
        port: target.port,
    };
    for attempt in 0..limits.attempts.max(1) {
        let ctx = PickContext {
            client: client.ip,
            http_header: client.http_header,
            exclude: &failed,
        };
        let Some(picked) = balancer.pick(to, &ctx) else {
            break;
        };
        if attempt > 0 {
            Metrics::inc(&metrics.retries);
        }
        let addr = picked.backend.addr;
        let started = Instant::now();
        match dialer
            .dial(&picked.backend, target.frontend, limits.timeout)
            .await
        {
            Ok(upstream) => {
                metrics.dial_duration.observe(started.elapsed());
                // A socket in the reserve is closed (dropped here): the node has used the data
                // path's share of descriptors; another endpoint would need one as well.
                if let Upstream::Tcp(socket) = &upstream
                    && edgemesh_host::fd_in_reserve(socket.as_fd())
                {
                    return Err(ProxyError::DescriptorReserve(*target.frontend));
                }
                return Ok(Connected { upstream, picked });
            }
            Err(error) => {
                tracing::debug!(backend = %addr, %error, "dial failed");
                Metrics::inc(&metrics.dial_failures);
                failed.push(addr);
                last_error = Some((addr, error));
            }
        }
    }
    Err(match last_error {
        Some((backend, source)) => ProxyError::AllDialsFailed {
            frontend: *target.frontend,
            backend,
            error: source,
        },
        None => ProxyError::NoEndpoint(*target.frontend),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use edgemesh_model::{ObjectKey, Protocol, ProxyDecision, ServiceKind, ServiceSpec};
    use futures::future::BoxFuture;

    use super::*;
    use crate::testing::FirstAvailable;

    /// Answers from a script and fails the test on any dial it was not told about.
    struct ScriptedDialer {
        script: HashMap<SocketAddr, io::ErrorKind>,
        succeed: Option<SocketAddr>,
        dialed: Mutex<Vec<SocketAddr>>,
    }

    impl Dialer for ScriptedDialer {
        fn dial<'a>(
            &'a self,
            b: &'a edgemesh_model::Backend,
            _: &'a Frontend,
            _: Duration,
        ) -> BoxFuture<'a, io::Result<Upstream>> {
            self.dialed.lock().unwrap().push(b.addr);
            let result = if self.succeed == Some(b.addr) {
                Ok(Upstream::Stream(Box::new(tokio::io::duplex(64).0)))
            } else {
                let kind = self
                    .script
                    .get(&b.addr)
                    .unwrap_or_else(|| panic!("unexpected dial of {}", b.addr));
                Err(io::Error::from(*kind))
            };
            Box::pin(async move { result })
        }
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 80))
    }

    fn service() -> (Frontend, Service, ServicePort) {
        let frontend = Frontend {
            ip: [10, 96, 0, 10].into(),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let port = ServicePort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            app_protocol: None,
            backends: Vec::new().into(),
        };
        let service = Service {
            spec: Arc::new(ServiceSpec {
                key: ObjectKey::new("ns", "web"),
                kind: ServiceKind::ClusterIp {
                    cluster_ips: vec![frontend.ip],
                },
                ports: Vec::new(),
                has_proxy_name_label: false,
                session_affinity: None,
            }),
            proxy: ProxyDecision::Proxied,
            lb_policy: Default::default(),
            ports: vec![port.clone()],
            endpoints: vec![],
        };
        (frontend, service, port)
    }

    async fn run(
        backends: Vec<SocketAddr>,
        dialer: &ScriptedDialer,
        attempts: usize,
        metrics: &Metrics,
    ) -> Result<Connected, ProxyError> {
        let (frontend, service, port) = service();
        let balancer = FirstAvailable::new(backends);
        let target = Target {
            frontend: &frontend,
            service: &service,
            port: &port,
            foreign: &[],
        };
        let client = Client {
            ip: [127, 0, 0, 1].into(),
            http_header: None,
        };
        let limits = DialLimits {
            attempts,
            timeout: Duration::from_secs(1),
        };
        dial_any(target, client, &balancer, dialer, limits, metrics).await
    }

    #[tokio::test]
    async fn failed_endpoints_are_excluded_until_one_answers() {
        use io::ErrorKind::*;
        let dialer = ScriptedDialer {
            script: HashMap::from([(addr(1), ConnectionRefused), (addr(2), TimedOut)]),
            succeed: Some(addr(3)),
            dialed: Mutex::default(),
        };
        let metrics = Metrics::default();
        let connected = run(vec![addr(1), addr(2), addr(3)], &dialer, 3, &metrics)
            .await
            .unwrap();
        assert_eq!(connected.picked.backend.addr, addr(3));
        assert_eq!(
            *dialer.dialed.lock().unwrap(),
            vec![addr(1), addr(2), addr(3)]
        );
        let m = metrics.snapshot();
        assert_eq!((m.dial_failures, m.retries), (2, 2));
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let dialer = ScriptedDialer {
            script: HashMap::from([
                (addr(1), io::ErrorKind::ConnectionRefused),
                (addr(2), io::ErrorKind::ConnectionRefused),
            ]),
            succeed: None,
            dialed: Mutex::default(),
        };
        // addr(3) is never dialed: the dialer would panic on it.
        let error = run(
            vec![addr(1), addr(2), addr(3)],
            &dialer,
            2,
            &Metrics::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, ProxyError::AllDialsFailed { backend, .. } if backend == addr(2)),
            "{error}"
        );
    }

    #[tokio::test]
    async fn no_endpoint_dials_nothing() {
        let dialer = ScriptedDialer {
            script: HashMap::new(),
            succeed: None,
            dialed: Mutex::default(),
        };
        let error = run(vec![], &dialer, 3, &Metrics::default())
            .await
            .unwrap_err();
        assert!(matches!(error, ProxyError::NoEndpoint(_)), "{error}");
        assert!(dialer.dialed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn running_out_of_endpoints_reports_the_last_failure() {
        let dialer = ScriptedDialer {
            script: HashMap::from([(addr(1), io::ErrorKind::ConnectionRefused)]),
            succeed: None,
            dialed: Mutex::default(),
        };
        let error = run(vec![addr(1)], &dialer, 3, &Metrics::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ProxyError::AllDialsFailed { .. }),
            "{error}"
        );
    }
}
