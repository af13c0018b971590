//! What the gateway reads: Istio Gateways and VirtualServices, and the TLS Secrets their
//! servers name (`credentialName`).
//!
//! These are the validated *structure* of the objects (required fields present, ports in range,
//! enums known). What needs more than the object itself — a regex that must compile, a Secret that
//! must exist, two servers that must not conflict — is checked when the gateway compiles its
//! route table, so one broken object is reported by name and the others keep serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::spec::{DestinationRuleSpec, ObjectKey, PodSpec};

/// An Istio `Gateway`: the listeners a gateway whose labels match `selector` opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GatewaySpec {
    pub key: ObjectKey,
    /// Labels of the gateway workloads this Gateway applies to (Istio: every label must match;
    /// an empty selector matches every gateway).
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<ServerSpec>,
}

/// One `servers[]` entry: a port, its protocol, the hosts it serves and its TLS settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerSpec {
    pub port: u16,
    /// `port.name`, as written (informative).
    pub port_name: String,
    pub protocol: ServerProtocol,
    /// `hosts`, as written: `*`, `example.com`, `*.example.com`, optionally prefixed with
    /// `namespace/` (`./` meaning the Gateway's own namespace, `*/` any namespace).
    pub hosts: Vec<String>,
    pub tls: Option<ServerTls>,
}

/// `port.protocol` of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ServerProtocol {
    Http,
    Https,
    Http2,
    Grpc,
    Tcp,
    Tls,
}

impl ServerProtocol {
    /// Istio's spelling (case-insensitive on input).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "HTTP" => Self::Http,
            "HTTPS" => Self::Https,
            "HTTP2" => Self::Http2,
            "GRPC" => Self::Grpc,
            "TCP" => Self::Tcp,
            "TLS" => Self::Tls,
            _ => return None,
        })
    }

    /// Whether requests on this port are HTTP (routed by the `http` routes).
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::Https | Self::Http2 | Self::Grpc)
    }
}

/// `servers[].tls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerTls {
    pub mode: TlsMode,
    /// The Secret (in the Gateway's namespace) holding `tls.crt`, `tls.key` and optionally
    /// `ca.crt`. `None` with a terminating mode is a compile error (no file paths are read).
    pub credential_name: Option<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// `cipherSuites`, as written (OpenSSL or IANA names); unknown ones are warned and skipped.
    pub cipher_suites: Vec<String>,
    /// `httpsRedirect`: answer plain HTTP with a 301 to https.
    pub https_redirect: bool,
}

/// `tls.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TlsMode {
    /// Terminate TLS with the Secret's certificate.
    Simple,
    /// Terminate and require a client certificate (checked against `ca.crt`, else the Secret's
    /// own certificate).
    Mutual,
    /// Do not terminate: route by SNI to a `tls` route.
    Passthrough,
}

impl TlsMode {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "SIMPLE" => Self::Simple,
            "MUTUAL" => Self::Mutual,
            "PASSTHROUGH" => Self::Passthrough,
            _ => return None,
        })
    }
}

/// `minProtocolVersion` / `maxProtocolVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

impl TlsVersion {
    /// Istio's `TLSV1_2` spelling. `TLS_AUTO` is no version (the caller reads it as no bound).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "TLSV1_0" => Self::V1_0,
            "TLSV1_1" => Self::V1_1,
            "TLSV1_2" => Self::V1_2,
            "TLSV1_3" => Self::V1_3,
            _ => return None,
        })
    }
}

/// An Istio `VirtualService` as bound to gateways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtualServiceSpec {
    pub key: ObjectKey,
    /// `hosts`, as written.
    pub hosts: Vec<String>,
    /// `gateways`, as written: `name` (the VirtualService's namespace) or `namespace/name`;
    /// `mesh` (sidecars) is kept and ignored by the gateway.
    pub gateways: Vec<String>,
    pub http: Vec<HttpRouteSpec>,
    pub tcp: Vec<L4RouteSpec>,
    pub tls: Vec<L4RouteSpec>,
}

/// One `http[]` route (`Default`: no name, match, destination or policy, for struct updates).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HttpRouteSpec {
    pub name: Option<String>,
    /// Any of them matches (an empty list matches every request).
    pub matches: Vec<HttpMatchSpec>,
    pub route: Vec<DestinationSpec>,
    pub redirect: Option<RedirectSpec>,
    pub rewrite: Option<RewriteSpec>,
    pub timeout: Option<Duration>,
    pub retries: Option<RetriesSpec>,
    pub headers: HeaderOpsSpec,
}

/// One `match[]` entry of an http route: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HttpMatchSpec {
    pub uri: Option<StringMatchSpec>,
    pub method: Option<StringMatchSpec>,
    pub authority: Option<StringMatchSpec>,
    /// Header name (lower case) → match.
    pub headers: Vec<(String, StringMatchSpec)>,
    pub query_params: Vec<(String, StringMatchSpec)>,
    pub port: Option<u16>,
    /// `gateways` restricting this match (as written).
    pub gateways: Vec<String>,
}

/// Istio's `StringMatch`. The regex is RE2 syntax, compiled by the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum StringMatchSpec {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// `route[].destination` with its `weight`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DestinationSpec {
    /// `destination.host`: a Service name, `name.namespace`, or its full
    /// `name.namespace.svc.cluster.local` form.
    pub host: String,
    pub port: Option<u16>,
    pub subset: Option<String>,
    /// Istio's default: with one destination 100; with several, unset weights are 0.
    pub weight: u32,
}

/// `redirect`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RedirectSpec {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    pub port: Option<u16>,
    /// Default 301.
    pub status: u16,
}

/// `rewrite`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RewriteSpec {
    /// Replaces the matched prefix (or the whole path for an exact/regex match).
    pub uri: Option<String>,
    pub authority: Option<String>,
}

/// `retries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RetriesSpec {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// `retryOn` as written (a comma list of Envoy retry conditions and status codes),
    /// interpreted by the gateway.
    pub retry_on: Option<String>,
}

/// `headers.request` / `headers.response`: `set`, `add`, `remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderOpsSpec {
    pub request: HeaderOps,
    pub response: HeaderOps,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderOps {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// One `tcp[]` or `tls[]` route: matched on port (and, for `tls`, SNI hosts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct L4RouteSpec {
    /// Any of them matches (empty: every connection).
    pub matches: Vec<L4MatchSpec>,
    pub route: Vec<DestinationSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct L4MatchSpec {
    pub port: Option<u16>,
    /// `sniHosts` (tls routes only).
    pub sni_hosts: Vec<String>,
    pub gateways: Vec<String>,
}

/// A Secret holding TLS material under Kubernetes' keys (`kubernetes.io/tls`, or Opaque with the
/// same keys; Istio's `<credentialName>-cacert` Secret holds only `ca.crt`). PEM bytes as stored,
/// parsed and checked when the gateway uses them. Secrets with none of the keys are not kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TlsSecretSpec {
    pub key: ObjectKey,
    /// `tls.crt`.
    #[serde(skip)]
    pub cert_pem: Option<Arc<[u8]>>,
    /// `tls.key`.
    #[serde(skip)]
    pub key_pem: Option<Arc<[u8]>>,
    /// `ca.crt`: client certificates are checked against it (MUTUAL).
    #[serde(skip)]
    pub ca_pem: Option<Arc<[u8]>>,
}

/// The ingress objects of one [`Snapshot`](crate::Snapshot), by key (empty for the agent, which
/// does not read them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingress {
    pub gateways: BTreeMap<ObjectKey, Arc<GatewaySpec>>,
    pub virtual_services: BTreeMap<ObjectKey, Arc<VirtualServiceSpec>>,
    pub secrets: BTreeMap<ObjectKey, Arc<TlsSecretSpec>>,
    /// DestinationRules with `subsets`, for the gateway's `destination.subset`.
    pub destination_rules: BTreeMap<ObjectKey, Arc<DestinationRuleSpec>>,
    /// Pods with an address, for matching subset labels to endpoints by IP.
    pub pods: BTreeMap<ObjectKey, Arc<PodSpec>>,
}

impl Ingress {
    pub fn is_empty(&self) -> bool {
        self.gateways.is_empty()
            && self.virtual_services.is_empty()
            && self.secrets.is_empty()
            && self.destination_rules.is_empty()
            && self.pods.is_empty()
    }
}
