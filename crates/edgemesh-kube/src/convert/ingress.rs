//! Istio Gateways and VirtualServices (any served version: v1alpha3, v1beta1 and v1 have the
//! same fields), and core Secrets holding TLS material, → the gateway's specs.
//!
//! The Istio objects are walked as JSON, so unknown fields and versions are tolerated; every
//! error names the field by its path under `spec` (`http[0].match[1].uri`).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use edgemesh_model::ingress::{
    DestinationSpec, GatewaySpec, HeaderOps, HeaderOpsSpec, HttpMatchSpec, HttpRouteSpec,
    L4MatchSpec, L4RouteSpec, RedirectSpec, RetriesSpec, RewriteSpec, ServerProtocol, ServerSpec,
    ServerTls, StringMatchSpec, TlsMode, TlsSecretSpec, TlsVersion, VirtualServiceSpec,
};
use edgemesh_model::{ObjectKey, ResourceKind};
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use super::{Result, invalid, istio_object, object_key, require_name};

/// A reason naming the field it is about.
type Field<T> = std::result::Result<T, String>;

/// Istio's default `redirectCode`.
const DEFAULT_REDIRECT: u16 = 301;
/// Istio's weight of the only destination of a route when none is written.
const SOLE_WEIGHT: u32 = 100;
/// Secret types that may hold the keys below (kubectl's `create secret tls` and `generic`).
const TLS_SECRET_TYPES: [&str; 2] = ["kubernetes.io/tls", "Opaque"];

/// Converts an Istio Gateway.
pub fn gateway(value: &Value) -> Result<GatewaySpec> {
    let kind = ResourceKind::Gateway;
    let (key, spec) = istio_object(kind, value)?;
    gateway_spec(&At::root(spec), key.clone()).map_err(|r| invalid(kind, &key, r))
}

/// Converts an Istio VirtualService.
pub fn virtual_service(value: &Value) -> Result<VirtualServiceSpec> {
    let kind = ResourceKind::VirtualService;
    let (key, spec) = istio_object(kind, value)?;
    virtual_service_spec(&At::root(spec), key.clone()).map_err(|r| invalid(kind, &key, r))
}

/// Converts a core Secret holding `tls.crt`, `tls.key` and/or `ca.crt` (type
/// `kubernetes.io/tls` or `Opaque`). `Ok(None)`: not a TLS Secret (another type, or none of the
/// keys), which the sources skip without a word: most Secrets of a cluster are not for us.
pub fn tls_secret(secret: &Secret) -> Result<Option<TlsSecretSpec>> {
    let key = object_key(&secret.metadata, true);
    require_name(ResourceKind::Secret, &key)?;
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if !TLS_SECRET_TYPES.contains(&type_) {
        return Ok(None);
    }
    let pem = |name: &str| {
        let bytes = secret.data.as_ref()?.get(name)?;
        Some(Arc::<[u8]>::from(bytes.0.as_slice()))
    };
    let spec = TlsSecretSpec {
        key,
        cert_pem: pem("tls.crt"),
        key_pem: pem("tls.key"),
        ca_pem: pem("ca.crt"),
    };
    let holds_any = spec.cert_pem.is_some() || spec.key_pem.is_some() || spec.ca_pem.is_some();
    Ok(holds_any.then_some(spec))
}

/// A JSON value and its path under `spec`, for error messages.
#[derive(Debug, Clone)]
struct At<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> At<'a> {
    fn root(value: &'a Value) -> Self {
        At {
            value,
            path: String::new(),
        }
    }

    fn child(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The field `name`; `None` when absent or null (protobuf JSON's "unset").
    fn field(&self, name: &str) -> Option<At<'a>> {
        match self.value.get(name) {
            None | Some(Value::Null) => None,
            Some(value) => Some(At {
                value,
                path: self.child(name),
            }),
        }
    }

    fn required(&self, name: &str) -> Field<At<'a>> {
        self.field(name)
            .ok_or_else(|| format!("{}: is required", self.child(name)))
    }

    fn reason(&self, reason: impl Display) -> String {
        format!("{}: {reason}", self.path)
    }

    fn str(&self) -> Field<&'a str> {
        self.value
            .as_str()
            .ok_or_else(|| self.reason("expected a string"))
    }

    fn bool(&self) -> Field<bool> {
        self.value
            .as_bool()
            .ok_or_else(|| self.reason("expected true or false"))
    }

    fn int(&self) -> Field<i64> {
        self.value
            .as_i64()
            .ok_or_else(|| self.reason("expected an integer"))
    }

    fn items(&self) -> Field<Vec<At<'a>>> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.reason("expected a list"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| At {
                value,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }

    fn entries(&self) -> Field<Vec<(&'a str, At<'a>)>> {
        let map = self
            .value
            .as_object()
            .ok_or_else(|| self.reason("expected a map"))?;
        Ok(map
            .iter()
            .map(|(name, value)| {
                let at = At {
                    value,
                    path: self.child(name),
                };
                (name.as_str(), at)
            })
            .collect())
    }

    /// The items of the list `name` (none when absent).
    fn list(&self, name: &str) -> Field<Vec<At<'a>>> {
        self.field(name).map_or(Ok(Vec::new()), |f| f.items())
    }

    fn opt_string(&self, name: &str) -> Field<Option<String>> {
        self.field(name)
            .map(|f| f.str().map(str::to_owned))
            .transpose()
    }

    fn strings(&self, name: &str) -> Field<Vec<String>> {
        convert_all(&self.list(name)?, |s| s.str().map(str::to_owned))
    }

    fn string_map(&self, name: &str) -> Field<Vec<(String, String)>> {
        let Some(map) = self.field(name) else {
            return Ok(Vec::new());
        };
        map.entries()?
            .into_iter()
            .map(|(k, v)| Ok((k.to_owned(), v.str()?.to_owned())))
            .collect()
    }

    /// A list that must not be empty.
    fn non_empty<T>(&self, name: &str, items: Vec<T>, what: &str) -> Field<Vec<T>> {
        if items.is_empty() {
            return Err(format!(
                "{}: at least one {what} is required",
                self.child(name)
            ));
        }
        Ok(items)
    }
}

fn port_number(at: &At) -> Field<u16> {
    let n = at.int()?;
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| at.reason(format!("{n} is out of range 1-65535")))
}

fn gateway_spec(spec: &At, key: ObjectKey) -> Field<GatewaySpec> {
    let selector: BTreeMap<String, String> = spec.string_map("selector")?.into_iter().collect();
    let servers = spec
        .list("servers")?
        .iter()
        .map(server)
        .collect::<Field<Vec<_>>>()?;
    Ok(GatewaySpec {
        key,
        selector,
        servers: spec.non_empty("servers", servers, "server")?,
    })
}

fn server(at: &At) -> Field<ServerSpec> {
    let port = at.required("port")?;
    let protocol = port.required("protocol")?;
    let text = protocol.str()?;
    let protocol = ServerProtocol::parse(text).ok_or_else(|| {
        protocol.reason(format!(
            "'{text}' is not one of HTTP, HTTPS, HTTP2, GRPC, TCP, TLS"
        ))
    })?;
    Ok(ServerSpec {
        port: port_number(&port.required("number")?)?,
        port_name: port.opt_string("name")?.unwrap_or_default(),
        protocol,
        hosts: at.non_empty("hosts", at.strings("hosts")?, "host")?,
        tls: at.field("tls").map(|t| server_tls(&t)).transpose()?,
    })
}

fn server_tls(at: &At) -> Field<ServerTls> {
    // Protobuf's unset enum is its first value, PASSTHROUGH (a `tls` with only
    // `httpsRedirect` on a plain HTTP server has no mode).
    let mode = match at.field("mode") {
        None => TlsMode::Passthrough,
        Some(mode) => {
            let text = mode.str()?;
            TlsMode::parse(text).ok_or_else(|| {
                mode.reason(format!(
                    "'{text}' is not supported (supported: SIMPLE, MUTUAL, PASSTHROUGH)"
                ))
            })?
        }
    };
    let min_version = tls_version(at, "minProtocolVersion")?;
    let max_version = tls_version(at, "maxProtocolVersion")?;
    if let (Some(min), Some(max)) = (min_version, max_version)
        && min > max
    {
        return Err(at.reason("minProtocolVersion is above maxProtocolVersion"));
    }
    Ok(ServerTls {
        mode,
        credential_name: at.opt_string("credentialName")?.filter(|n| !n.is_empty()),
        min_version,
        max_version,
        cipher_suites: at.strings("cipherSuites")?,
        https_redirect: at
            .field("httpsRedirect")
            .map(|b| b.bool())
            .transpose()?
            .unwrap_or(false),
    })
}

/// `TLS_AUTO` (and unset) is no bound.
fn tls_version(at: &At, name: &str) -> Field<Option<TlsVersion>> {
    let Some(version) = at.field(name) else {
        return Ok(None);
    };
    let text = version.str()?;
    if text.eq_ignore_ascii_case("TLS_AUTO") {
        return Ok(None);
    }
    TlsVersion::parse(text).map(Some).ok_or_else(|| {
        version.reason(format!(
            "'{text}' is not one of TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3"
        ))
    })
}

/// Converts every item of a list into a `Vec` of exactly their number. Collected through
/// `Result` (no size hint) a `Vec` starts with room for 4: a VirtualService with one http route
/// held 4 routes' worth (1.6 KB; at 1,000 VirtualServices 1.6 of the gateway's 5.3 MB heap
/// peak, heaptrack), its one destination and its one host 4 each.
fn convert_all<'a, T>(
    items: &[At<'a>],
    mut convert: impl FnMut(&At<'a>) -> Field<T>,
) -> Field<Vec<T>> {
    let mut converted = Vec::with_capacity(items.len());
    for item in items {
        converted.push(convert(item)?);
    }
    Ok(converted)
}

fn virtual_service_spec(spec: &At, key: ObjectKey) -> Field<VirtualServiceSpec> {
    let routes = |name: &str, tls: bool| -> Field<Vec<L4RouteSpec>> {
        convert_all(&spec.list(name)?, |r| l4_route(r, tls))
    };
    Ok(VirtualServiceSpec {
        key,
        hosts: spec.non_empty("hosts", spec.strings("hosts")?, "host")?,
        gateways: spec.strings("gateways")?,
        http: convert_all(&spec.list("http")?, http_route)?,
        tcp: routes("tcp", false)?,
        tls: routes("tls", true)?,
    })
}

fn http_route(at: &At) -> Field<HttpRouteSpec> {
    for unsupported in ["directResponse", "delegate"] {
        if let Some(field) = at.field(unsupported) {
            return Err(field.reason("is not supported by the gateway"));
        }
    }
    let route = destinations(at)?;
    let redirect = at.field("redirect").map(|r| redirect(&r)).transpose()?;
    match (route.is_empty(), redirect.is_some()) {
        (true, false) => return Err(at.reason("one of route or redirect is required")),
        (false, true) => return Err(at.reason("route and redirect cannot be used together")),
        _ => {}
    }
    Ok(HttpRouteSpec {
        name: at.opt_string("name")?,
        matches: convert_all(&at.list("match")?, http_match)?,
        route,
        redirect,
        rewrite: at.field("rewrite").map(|r| rewrite(&r)).transpose()?,
        timeout: at.field("timeout").map(|t| duration(&t)).transpose()?,
        retries: at.field("retries").map(|r| retries(&r)).transpose()?,
        headers: at
            .field("headers")
            .map(|h| header_ops(&h))
            .transpose()?
            .unwrap_or_default(),
    })
}

fn http_match(at: &At) -> Field<HttpMatchSpec> {
    let string_match_of = |name: &str| at.field(name).map(|m| string_match(&m)).transpose();
    let matches_of = |name: &str, matcher: fn(&At) -> Field<StringMatchSpec>| {
        let Some(map) = at.field(name) else {
            return Ok(Vec::new());
        };
        map.entries()?
            .into_iter()
            .map(|(key, m)| Ok((key.to_ascii_lowercase(), matcher(&m)?)))
            .collect::<Field<Vec<_>>>()
    };
    Ok(HttpMatchSpec {
        uri: string_match_of("uri")?,
        method: string_match_of("method")?,
        authority: string_match_of("authority")?,
        headers: matches_of("headers", header_match)?,
        query_params: matches_of("queryParams", string_match)?,
        port: at.field("port").map(|p| port_number(&p)).transpose()?,
        gateways: at.strings("gateways")?,
    })
}

/// Istio's `StringMatch`: exactly one of `exact`, `prefix`, `regex`.
fn string_match(at: &At) -> Field<StringMatchSpec> {
    let given: Vec<(&str, At)> = ["exact", "prefix", "regex"]
        .into_iter()
        .filter_map(|name| Some((name, at.field(name)?)))
        .collect();
    let [(name, value)] = given.as_slice() else {
        return Err(at.reason("exactly one of exact, prefix, regex"));
    };
    let text = value.str()?.to_owned();
    Ok(match *name {
        "exact" => StringMatchSpec::Exact(text),
        "prefix" => StringMatchSpec::Prefix(text),
        _ => StringMatchSpec::Regex(text),
    })
}

/// A header match; `{}` checks only that the header is present (Istio), which is the regex
/// matching every value (a match on an absent header fails whatever its pattern).
fn header_match(at: &At) -> Field<StringMatchSpec> {
    if at.value.as_object().is_some_and(|m| m.is_empty()) {
        return Ok(StringMatchSpec::Regex(".*".to_owned()));
    }
    string_match(at)
}

/// `route[]`: one destination without a weight gets 100; with several, an unset weight is 0.
fn destinations(at: &At) -> Field<Vec<DestinationSpec>> {
    let items = at.list("route")?;
    let default = if items.len() == 1 { SOLE_WEIGHT } else { 0 };
    convert_all(&items, |d| destination(d, default))
}

fn destination(at: &At, default_weight: u32) -> Field<DestinationSpec> {
    let dest = at.required("destination")?;
    let host = dest.required("host")?;
    let host_name = host.str()?;
    if host_name.is_empty() {
        return Err(host.reason("is empty"));
    }
    let port = match dest.field("port") {
        Some(port) => port.field("number").map(|n| port_number(&n)).transpose()?,
        None => None,
    };
    Ok(DestinationSpec {
        host: host_name.to_owned(),
        port,
        subset: dest.opt_string("subset")?.filter(|s| !s.is_empty()),
        weight: at
            .field("weight")
            .map(|w| weight(&w))
            .transpose()?
            .unwrap_or(default_weight),
    })
}

fn weight(at: &At) -> Field<u32> {
    let n = at.int()?;
    if n < 0 {
        return Err(at.reason(format!("{n} is negative")));
    }
    u32::try_from(n).map_err(|_| at.reason(format!("{n} is too large")))
}

fn redirect(at: &At) -> Field<RedirectSpec> {
    let status = match at.field("redirectCode") {
        None => DEFAULT_REDIRECT,
        Some(code) => {
            let n = code.int()?;
            u16::try_from(n)
                .ok()
                .filter(|c| (300..=399).contains(c))
                .ok_or_else(|| code.reason(format!("{n} is not a 3xx redirect status")))?
        }
    };
    Ok(RedirectSpec {
        uri: at.opt_string("uri")?,
        authority: at.opt_string("authority")?,
        scheme: at.opt_string("scheme")?,
        port: at.field("port").map(|p| port_number(&p)).transpose()?,
        status,
    })
}

fn rewrite(at: &At) -> Field<RewriteSpec> {
    Ok(RewriteSpec {
        uri: at.opt_string("uri")?,
        authority: at.opt_string("authority")?,
    })
}

fn retries(at: &At) -> Field<RetriesSpec> {
    let attempts = match at.field("attempts") {
        Some(n) => weight(&n)?,
        None => 0,
    };
    Ok(RetriesSpec {
        attempts,
        per_try_timeout: at
            .field("perTryTimeout")
            .map(|t| duration(&t))
            .transpose()?,
        retry_on: at.opt_string("retryOn")?,
    })
}

fn header_ops(at: &At) -> Field<HeaderOpsSpec> {
    let ops = |name: &str| -> Field<HeaderOps> {
        let Some(ops) = at.field(name) else {
            return Ok(HeaderOps::default());
        };
        Ok(HeaderOps {
            set: ops.string_map("set")?,
            add: ops.string_map("add")?,
            remove: ops.strings("remove")?,
        })
    };
    Ok(HeaderOpsSpec {
        request: ops("request")?,
        response: ops("response")?,
    })
}

/// A `tcp[]` or (`tls`) `tls[]` route; a tls route is matched by SNI, so it needs `sniHosts`.
fn l4_route(at: &At, tls: bool) -> Field<L4RouteSpec> {
    let matches = convert_all(&at.list("match")?, |m| l4_match(m, tls))?;
    let matches = if tls {
        at.non_empty("match", matches, "match with sniHosts")?
    } else {
        matches
    };
    let route = at.non_empty("route", destinations(at)?, "destination")?;
    Ok(L4RouteSpec { matches, route })
}

fn l4_match(at: &At, tls: bool) -> Field<L4MatchSpec> {
    let sni_hosts = if tls {
        at.non_empty("sniHosts", at.strings("sniHosts")?, "host")?
    } else {
        Vec::new()
    };
    Ok(L4MatchSpec {
        port: at.field("port").map(|p| port_number(&p)).transpose()?,
        sni_hosts,
        gateways: at.strings("gateways")?,
    })
}

/// Istio's durations: protobuf's JSON form (`5s`, `1.5s`) and Go's (`100ms`, `1m30s`).
fn duration(at: &At) -> Field<Duration> {
    let text = at.str()?;
    parse_duration(text).ok_or_else(|| {
        at.reason(format!(
            "'{text}' is not a duration (like 5s, 1.5s or 100ms)"
        ))
    })
}

fn parse_duration(text: &str) -> Option<Duration> {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    if text.is_empty() {
        return None;
    }
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = text;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let (number, tail) = rest.split_at(rest.find(|c: char| !is_number(c))?);
        let (unit, next) = tail.split_at(tail.find(is_number).unwrap_or(tail.len()));
        let scale: u128 = match unit {
            "h" => 3_600 * NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "s" => NANOS_PER_SEC,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        nanos = nanos.checked_add(scaled(number, scale)?)?;
        rest = next;
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, subsec))
}

/// `number` (decimal, with an optional fraction) times `scale`, exactly: digits below a
/// nanosecond are dropped.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(scale)?;
    let mut unit = scale;
    for digit in fraction.bytes() {
        unit /= 10;
        value += u128::from(digit - b'0') * unit;
    }
    Some(value)
}

#[cfg(test)]
mod tests;
