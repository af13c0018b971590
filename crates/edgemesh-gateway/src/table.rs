//! Snapshot → route table: the ports this gateway opens and, per port, its routes in the order
//! they are tried.
//!
//! Pure apart from building TLS configs from the Secrets. Every object that cannot be compiled
//! (a Gateway whose Secret is missing, a VirtualService with a bad regex, a server whose port
//! another Gateway already serves differently) becomes a [`Problem`] naming it and is left out;
//! everything else compiles.
//!
//! Order, as Istio: VirtualServices bound to a port are taken in key order (Istio uses creation
//! time, which the Snapshot does not carry) and within each its routes in order; a request goes
//! to the first route that matches, whichever VirtualService it is in (EdgeMesh's gateway only
//! ever tried the first VirtualService of a server).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_model::ingress::{
    DestinationSpec, GatewaySpec, HeaderOpsSpec, HttpRouteSpec, Ingress, L4RouteSpec, RedirectSpec,
    RewriteSpec, ServerProtocol, ServerSpec, TlsMode, VirtualServiceSpec,
};
use edgemesh_model::{ObjectKey, Snapshot};
use serde::Serialize;

pub use crate::backend::Target;
use crate::hosts::{HostPattern, ServerHost};
use crate::matcher::{RequestMatch, RequestView};
use crate::retry::RetryPolicy;
use crate::subset::{self, service_of};
use crate::tls;

/// Which Gateways this gateway serves: those whose `selector` its labels satisfy.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub labels: BTreeMap<String, String>,
}

impl Identity {
    /// EdgeMesh's gateway pod label, which its examples' Gateways select.
    pub fn edgemesh_default() -> Self {
        Identity {
            labels: BTreeMap::from([("kubeedge".into(), "edgemesh-gateway".into())]),
        }
    }

    fn selects(&self, gateway: &GatewaySpec) -> bool {
        gateway
            .selector
            .iter()
            .all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// An object left out of the table, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `Gateway ns/name`, `VirtualService ns/name`.
    pub object: String,
    pub message: String,
}

/// The compiled table one Snapshot gives.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub version: u64,
    pub ports: BTreeMap<u16, Port>,
    pub problems: Vec<Problem>,
    /// Warnings that do not leave anything out (skipped cipher names, ...).
    pub warnings: Vec<Problem>,
}

/// How a port treats its connections.
#[derive(Clone, Debug)]
pub enum PortMode {
    /// HTTP, plain or behind TLS termination; `https_redirect` answers every request with a 301
    /// to https.
    Http {
        tls: Option<Arc<rustls::ServerConfig>>,
        https_redirect: bool,
    },
    /// TCP routes, plain or behind TLS termination.
    Tcp {
        tls: Option<Arc<rustls::ServerConfig>>,
    },
    /// TLS routes chosen by SNI, bytes passed through untouched.
    Passthrough,
}

impl PortMode {
    /// The same mode, TLS or not (what `describe` tells apart).
    fn same_kind(&self, other: &PortMode) -> bool {
        self.describe() == other.describe()
    }
}

/// One listening port.
#[derive(Debug)]
pub struct Port {
    pub number: u16,
    pub mode: PortMode,
    /// The Gateways whose servers share this port, with the hosts each admits.
    servers: Vec<(ObjectKey, Vec<ServerHost>)>,
    pub http: Vec<Arc<HttpRoute>>,
    pub l4: Vec<Arc<L4Route>>,
}

/// A compiled `http[]` route.
#[derive(Debug)]
pub struct HttpRoute {
    /// `namespace/virtualservice#index` or the route's `name`: the metrics and log label.
    pub name: String,
    hosts: Vec<HostPattern>,
    matches: Vec<RequestMatch>,
    pub action: HttpAction,
    pub rewrite: Option<RewriteSpec>,
    pub timeout: Option<Duration>,
    /// `None`: no retries (`attempts: 0`).
    pub retry: Option<RetryPolicy>,
    pub headers: HeaderOpsSpec,
}

#[derive(Debug)]
pub enum HttpAction {
    Forward(Destinations),
    Redirect(RedirectSpec),
}

/// A compiled `tcp[]` or `tls[]` route.
#[derive(Debug)]
pub struct L4Route {
    pub name: String,
    /// Any of them admits a connection (a tcp route without matches has one admitting all).
    matches: Vec<L4Match>,
    pub destinations: Destinations,
}

/// One `match[]` entry of a tcp or tls route.
#[derive(Debug)]
struct L4Match {
    /// SNI patterns (tls routes; empty for tcp routes = any).
    sni: Vec<HostPattern>,
    /// `gateways`, as for http matches (`None`: on any).
    gateways: Option<Vec<ObjectKey>>,
}

/// Weighted destinations.
#[derive(Debug, Clone)]
pub struct Destinations {
    pub targets: Vec<Target>,
    total_weight: u32,
}

impl Destinations {
    fn compile(
        specs: &[DestinationSpec],
        namespace: &str,
        ingress: &Ingress,
    ) -> Result<Self, String> {
        if specs.is_empty() {
            return Err("no destination".into());
        }
        let mut targets = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let service = service_of(&spec.host, namespace).ok_or_else(|| {
                format!(
                    "route[{i}].destination.host {:?} is not a Service of the cluster",
                    spec.host
                )
            })?;
            // An undefined subset keeps the route: its requests are answered 503 naming it.
            let subset = spec
                .subset
                .as_deref()
                .map(|name| subset::resolve(ingress, &service, name));
            targets.push(Target {
                service,
                port: spec.port,
                weight: spec.weight,
                subset,
            });
        }
        let total_weight = targets.iter().map(|t| t.weight).sum::<u32>();
        if total_weight == 0 && targets.len() > 1 {
            return Err("every destination has weight 0".into());
        }
        Ok(Destinations {
            targets,
            total_weight,
        })
    }

    /// The target for a roll in `0..total_weight` (any value when there is one target).
    pub fn pick(&self, roll: u32) -> &Target {
        let mut roll = roll % self.total_weight.max(1);
        for target in &self.targets {
            if roll < target.weight {
                return target;
            }
            roll -= target.weight;
        }
        &self.targets[0]
    }

    pub fn total_weight(&self) -> u32 {
        self.total_weight
    }
}

impl Port {
    /// Whether some server on this port serves `host`.
    pub fn serves_host(&self, host: &str) -> bool {
        self.servers
            .iter()
            .flat_map(|(_, hosts)| hosts)
            .any(|h| h.pattern.matches(host))
    }

    /// The first http route for this request, with the match that selected it.
    pub fn route_http(
        &self,
        host: &str,
        request: &RequestView<'_>,
    ) -> Option<(&Arc<HttpRoute>, Option<&RequestMatch>)> {
        self.http.iter().find_map(|route| {
            if !route.hosts.iter().any(|h| h.matches(host)) {
                return None;
            }
            if route.matches.is_empty() {
                return Some((route, None));
            }
            route
                .matches
                .iter()
                .find(|m| self.on_gateways(m.gateways(), Some(host)) && m.matches(request))
                .map(|m| (route, Some(m)))
        })
    }

    /// Whether a match restricted to `only` holds for a request to `host` (a TCP connection:
    /// `None`) on this port: unrestricted, or one of its Gateways has a server here for that
    /// host (Istio builds routes per Gateway server).
    fn on_gateways(&self, only: Option<&[ObjectKey]>, host: Option<&str>) -> bool {
        only.is_none_or(|only| {
            self.servers.iter().any(|(gateway, hosts)| {
                only.contains(gateway)
                    && host.is_none_or(|host| hosts.iter().any(|h| h.pattern.matches(host)))
            })
        })
    }

    /// The first tcp route, or the first tls route whose SNI patterns admit `sni`, whose
    /// match holds on this port's Gateways.
    pub fn route_l4(&self, sni: Option<&str>) -> Option<&Arc<L4Route>> {
        self.l4.iter().find(|route| {
            route.matches.iter().any(|m| {
                let by_sni =
                    m.sni.is_empty() || sni.is_some_and(|s| m.sni.iter().any(|p| p.matches(s)));
                by_sni && self.on_gateways(m.gateways.as_deref(), sni)
            })
        })
    }
}

impl RouteTable {
    /// Compiles the Snapshot's ingress objects for a gateway with `identity`.
    pub fn compile(snapshot: &Snapshot, identity: &Identity) -> Self {
        let mut table = RouteTable {
            version: snapshot.version,
            ..RouteTable::default()
        };
        for gateway in snapshot.ingress.gateways.values() {
            if identity.selects(gateway) {
                table.add_gateway(gateway, snapshot);
            }
        }
        for vs in snapshot.ingress.virtual_services.values() {
            let object = format!("VirtualService {}", vs.key);
            match table.add_virtual_service(vs, &snapshot.ingress) {
                Err(message) => table.problems.push(Problem { object, message }),
                Ok(undefined) => {
                    table
                        .problems
                        .extend(undefined.into_iter().map(|message| Problem {
                            object: object.clone(),
                            message,
                        }))
                }
            }
        }
        table
    }

    fn add_gateway(&mut self, gateway: &GatewaySpec, snapshot: &Snapshot) {
        let object = format!("Gateway {}", gateway.key);
        for server in &gateway.servers {
            let mode = match port_mode(server, &gateway.key.namespace, snapshot) {
                Ok((mode, warnings)) => {
                    self.warnings
                        .extend(warnings.into_iter().map(|message| Problem {
                            object: object.clone(),
                            message,
                        }));
                    mode
                }
                Err(message) => {
                    self.problems.push(Problem {
                        object: object.clone(),
                        message: format!("server on port {}: {message}", server.port),
                    });
                    continue;
                }
            };
            let hosts = server
                .hosts
                .iter()
                .map(|h| ServerHost::parse(h, &gateway.key.namespace))
                .collect();
            match self.ports.get_mut(&server.port) {
                None => {
                    self.ports.insert(
                        server.port,
                        Port {
                            number: server.port,
                            mode,
                            servers: vec![(gateway.key.clone(), hosts)],
                            http: Vec::new(),
                            l4: Vec::new(),
                        },
                    );
                }
                Some(port) if port.mode.same_kind(&mode) && same_tls(&port.mode, &mode) => {
                    port.servers.push((gateway.key.clone(), hosts));
                }
                Some(port) => self.problems.push(Problem {
                    object: object.clone(),
                    message: format!(
                        "server on port {} ({}) conflicts with Gateway {} which serves it as {}",
                        server.port,
                        mode.describe(),
                        port.servers[0].0,
                        port.mode.describe()
                    ),
                }),
            }
        }
    }

    /// Adds the routes of `vs`; returns its undefined subsets, which stay routed (to a 503).
    fn add_virtual_service(
        &mut self,
        vs: &VirtualServiceSpec,
        ingress: &Ingress,
    ) -> Result<Vec<String>, String> {
        let gateways = gateway_refs(&vs.gateways, &vs.key.namespace);
        let hosts: Vec<HostPattern> = vs.hosts.iter().map(|h| HostPattern::parse(h)).collect();
        let http = compile_http(vs, &gateways, ingress)?;
        let tcp = compile_l4(&vs.tcp, vs, &gateways, false, "tcp", ingress)?;
        let tls = compile_l4(&vs.tls, vs, &gateways, true, "tls", ingress)?;
        let undefined = undefined_subsets(&http, &tcp, &tls);
        for port in self.ports.values_mut() {
            let bound = port.servers.iter().any(|(gw, server_hosts)| {
                gateways.contains(gw)
                    && hosts
                        .iter()
                        .any(|h| server_hosts.iter().any(|s| s.admits(&vs.key.namespace, h)))
            });
            if !bound {
                continue;
            }
            match port.mode {
                PortMode::Http { .. } => port.http.extend(
                    http.iter()
                        .filter(|(p, _)| p.is_none_or(|p| p == port.number))
                        .map(|(_, r)| Arc::clone(r)),
                ),
                PortMode::Tcp { .. } => port.l4.extend(ports_of(&tcp, port.number)),
                PortMode::Passthrough => port.l4.extend(ports_of(&tls, port.number)),
            }
        }
        Ok(undefined)
    }
}

/// The messages of the subsets the routes name that do not resolve, each once.
fn undefined_subsets(
    http: &PortBound<HttpRoute>,
    tcp: &PortBound<L4Route>,
    tls: &PortBound<L4Route>,
) -> Vec<String> {
    let forwards = http.iter().filter_map(|(_, r)| match &r.action {
        HttpAction::Forward(d) => Some((&r.name, d)),
        HttpAction::Redirect(_) => None,
    });
    let l4 = tcp
        .iter()
        .chain(tls)
        .map(|(_, r)| (&r.name, &r.destinations));
    let mut messages: Vec<String> = forwards
        .chain(l4)
        .flat_map(|(name, d)| {
            d.targets.iter().filter_map(move |t| match &t.subset {
                Some(Err(why)) => Some(format!("route {name}: {why}")),
                _ => None,
            })
        })
        .collect();
    messages.dedup();
    messages
}

/// Routes restricted to a port by their matches (`None`: any port).
type PortBound<R> = Vec<(Option<u16>, Arc<R>)>;

fn ports_of(routes: &PortBound<L4Route>, port: u16) -> impl Iterator<Item = Arc<L4Route>> + '_ {
    routes
        .iter()
        .filter(move |(p, _)| p.is_none_or(|p| p == port))
        .map(|(_, r)| Arc::clone(r))
}

fn compile_http(
    vs: &VirtualServiceSpec,
    bound: &[ObjectKey],
    ingress: &Ingress,
) -> Result<PortBound<HttpRoute>, String> {
    let hosts: Vec<HostPattern> = vs.hosts.iter().map(|h| HostPattern::parse(h)).collect();
    let mut routes = Vec::with_capacity(vs.http.len());
    for (i, spec) in vs.http.iter().enumerate() {
        let route = compile_http_route(spec, vs, &hosts, bound, i, ingress)
            .map_err(|e| format!("http[{i}]: {e}"))?;
        routes.push((
            single_port(spec.matches.iter().map(|m| m.port)),
            Arc::new(route),
        ));
    }
    Ok(routes)
}

/// The one port every match restricts to, if they all name the same one.
fn single_port(mut ports: impl Iterator<Item = Option<u16>>) -> Option<u16> {
    let first = ports.next()??;
    ports.all(|p| p == Some(first)).then_some(first)
}

fn compile_http_route(
    spec: &HttpRouteSpec,
    vs: &VirtualServiceSpec,
    hosts: &[HostPattern],
    bound: &[ObjectKey],
    index: usize,
    ingress: &Ingress,
) -> Result<HttpRoute, String> {
    let matches = spec
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let compiled = RequestMatch::compile(m).map_err(|e| format!("match[{i}].{e}"))?;
            Ok(restrict(compiled, &m.gateways, bound, &vs.key.namespace))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let action = match (&spec.redirect, spec.route.is_empty()) {
        (Some(redirect), _) => HttpAction::Redirect(redirect.clone()),
        (None, false) => HttpAction::Forward(Destinations::compile(
            &spec.route,
            &vs.key.namespace,
            ingress,
        )?),
        (None, true) => return Err("neither route nor redirect".into()),
    };
    Ok(HttpRoute {
        name: route_name(spec.name.as_deref(), vs, index),
        hosts: hosts.to_vec(),
        matches,
        action,
        rewrite: spec.rewrite.clone(),
        timeout: spec.timeout,
        retry: RetryPolicy::compile(spec.retries.as_ref())?,
        headers: spec.headers.clone(),
    })
}

fn compile_l4(
    specs: &[L4RouteSpec],
    vs: &VirtualServiceSpec,
    bound: &[ObjectKey],
    by_sni: bool,
    field: &str,
    ingress: &Ingress,
) -> Result<PortBound<L4Route>, String> {
    let mut routes = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let destinations = Destinations::compile(&spec.route, &vs.key.namespace, ingress)
            .map_err(|e| format!("{field}[{i}]: {e}"))?;
        let mut matches: Vec<L4Match> = spec
            .matches
            .iter()
            .map(|m| L4Match {
                sni: if by_sni {
                    m.sni_hosts.iter().map(|h| HostPattern::parse(h)).collect()
                } else {
                    Vec::new()
                },
                gateways: restricted_to(&m.gateways, bound, &vs.key.namespace),
            })
            // A tls match admits connections by SNI only: without sniHosts it admits none.
            .filter(|m| !(by_sni && m.sni.is_empty()))
            .collect();
        if by_sni && matches.is_empty() {
            return Err(format!("{field}[{i}]: a tls route needs match[].sniHosts"));
        }
        if matches.is_empty() {
            matches.push(L4Match {
                sni: Vec::new(),
                gateways: None,
            });
        }
        let route = L4Route {
            name: route_name(None, vs, i),
            matches,
            destinations,
        };
        routes.push((
            single_port(spec.matches.iter().map(|m| m.port)),
            Arc::new(route),
        ));
    }
    Ok(routes)
}

fn route_name(name: Option<&str>, vs: &VirtualServiceSpec, index: usize) -> String {
    match name {
        Some(name) => format!("{}/{}", vs.key, name),
        None => format!("{}#{index}", vs.key),
    }
}

/// A match's own `gateways` replace the VirtualService's for that match (as Istio), but only
/// Gateways the VirtualService is bound to serve it: Istio reads a VirtualService only for
/// the Gateways in its top-level `gateways`.
fn restrict(
    m: RequestMatch,
    listed: &[String],
    bound: &[ObjectKey],
    namespace: &str,
) -> RequestMatch {
    match restricted_to(listed, bound, namespace) {
        Some(only) => m.only_on(only),
        None => m,
    }
}

/// The Gateways a match's `gateways` (`listed`) leaves it on, of those the VirtualService is
/// `bound` to; `None` when the match lists none (it holds wherever the VirtualService is bound).
fn restricted_to(
    listed: &[String],
    bound: &[ObjectKey],
    namespace: &str,
) -> Option<Vec<ObjectKey>> {
    if listed.is_empty() {
        return None;
    }
    Some(
        gateway_refs(listed, namespace)
            .into_iter()
            .filter(|g| bound.contains(g))
            .collect(),
    )
}

/// The Gateways named in a `gateways` list (`mesh`, the sidecars, is not one).
fn gateway_refs(listed: &[String], namespace: &str) -> Vec<ObjectKey> {
    listed
        .iter()
        .filter(|g| g.as_str() != "mesh")
        .map(|g| gateway_ref(g, namespace))
        .collect()
}

/// A Gateway reference as Istio resolves it: `namespace/name` (`./name`: this namespace),
/// `name` (in `namespace`), or the legacy `name.namespace[.svc.cluster.local]`.
fn gateway_ref(text: &str, namespace: &str) -> ObjectKey {
    match text.split_once('/') {
        Some((".", name)) => ObjectKey::new(namespace, name),
        Some((ns, name)) => ObjectKey::new(ns, name),
        None => match text.split_once('.') {
            Some((name, rest)) => ObjectKey::new(rest.split('.').next().unwrap_or(rest), name),
            None => ObjectKey::new(namespace, text),
        },
    }
}

/// How a server's port works; a terminating server's TLS config built from its Secret.
fn port_mode(
    server: &ServerSpec,
    namespace: &str,
    snapshot: &Snapshot,
) -> Result<(PortMode, Vec<String>), String> {
    let Some(settings) = &server.tls else {
        return match server.protocol {
            ServerProtocol::Tcp => Ok((PortMode::Tcp { tls: None }, vec![])),
            ServerProtocol::Https | ServerProtocol::Tls => {
                Err(format!("protocol {:?} needs a tls block", server.protocol))
            }
            _ => Ok((
                PortMode::Http {
                    tls: None,
                    https_redirect: false,
                },
                vec![],
            )),
        };
    };
    // A plain HTTP server's `tls` block may hold only `httpsRedirect` (its mode then reads as
    // PASSTHROUGH, protobuf's first value).
    if settings.https_redirect && settings.credential_name.is_none() {
        return Ok((
            PortMode::Http {
                tls: None,
                https_redirect: true,
            },
            vec![],
        ));
    }
    if settings.mode == TlsMode::Passthrough {
        return match server.protocol {
            ServerProtocol::Https | ServerProtocol::Tls => Ok((PortMode::Passthrough, vec![])),
            other => Err(format!(
                "tls mode PASSTHROUGH needs protocol HTTPS or TLS, not {other:?}"
            )),
        };
    }
    let name = settings
        .credential_name
        .as_deref()
        .ok_or("tls.credentialName is required (certificate files are not read)")?;
    let secret = snapshot
        .ingress
        .secrets
        .get(&ObjectKey::new(namespace, name))
        .ok_or_else(|| format!("Secret {namespace}/{name} (tls.credentialName) not found"))?;
    let ca = snapshot
        .ingress
        .secrets
        .get(&ObjectKey::new(namespace, format!("{name}-cacert")));
    let alpn: &[&[u8]] = match server.protocol {
        ServerProtocol::Tcp | ServerProtocol::Tls => &[],
        _ => &[b"h2", b"http/1.1"],
    };
    let terminator =
        tls::terminator(settings, secret, ca.map(|c| &**c), alpn).map_err(|e| e.to_string())?;
    let tls = Some(terminator.config);
    let mode = match server.protocol {
        ServerProtocol::Tcp | ServerProtocol::Tls => PortMode::Tcp { tls },
        _ => PortMode::Http {
            tls,
            https_redirect: false,
        },
    };
    Ok((mode, terminator.warnings))
}

/// Two terminating servers can share a port only with the same TLS config (one certificate
/// per port; SNI certificate selection is not built).
fn same_tls(a: &PortMode, b: &PortMode) -> bool {
    let tls_of = |m: &PortMode| match m {
        PortMode::Http { tls, .. } | PortMode::Tcp { tls } => tls.is_some(),
        PortMode::Passthrough => false,
    };
    !tls_of(a) && !tls_of(b)
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
