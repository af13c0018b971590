//! Compiled request matches: Istio's `HTTPMatchRequest` with its regexes built once.

use edgemesh_model::ObjectKey;
use edgemesh_model::ingress::{HttpMatchSpec, StringMatchSpec};
use regex::Regex;

/// A compiled `StringMatch`. Regexes are anchored: Istio (Envoy) matches the whole value.
#[derive(Clone, Debug)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl StringMatch {
    pub fn compile(spec: &StringMatchSpec) -> Result<Self, String> {
        Ok(match spec {
            StringMatchSpec::Exact(s) => StringMatch::Exact(s.clone()),
            StringMatchSpec::Prefix(s) => StringMatch::Prefix(s.clone()),
            StringMatchSpec::Regex(r) => StringMatch::Regex(
                Regex::new(&format!("^(?:{r})$"))
                    .map_err(|error| format!("regex {r:?} does not compile: {error}"))?,
            ),
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(s) => value == s,
            StringMatch::Prefix(s) => value.starts_with(s.as_str()),
            StringMatch::Regex(r) => r.is_match(value),
        }
    }
}

/// What a request offers to the matches.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub authority: &'a str,
    pub headers: &'a http::HeaderMap,
    pub port: u16,
}

/// One compiled `match[]` entry: every condition present must hold.
#[derive(Clone, Debug, Default)]
pub struct RequestMatch {
    uri: Option<StringMatch>,
    method: Option<StringMatch>,
    authority: Option<StringMatch>,
    headers: Vec<(http::HeaderName, StringMatch)>,
    query_params: Vec<(String, StringMatch)>,
    port: Option<u16>,
    /// `gateways`: the match holds only on these Gateways' servers (`None`: on any; an empty
    /// list: on none, e.g. `[mesh]`).
    gateways: Option<Vec<ObjectKey>>,
}

impl RequestMatch {
    pub fn compile(spec: &HttpMatchSpec) -> Result<Self, String> {
        let optional = |m: &Option<StringMatchSpec>, what: &str| {
            m.as_ref()
                .map(StringMatch::compile)
                .transpose()
                .map_err(|e| format!("{what}: {e}"))
        };
        let mut headers = Vec::with_capacity(spec.headers.len());
        for (name, m) in &spec.headers {
            let header = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: {name:?} is not a header name"))?;
            let m = StringMatch::compile(m).map_err(|e| format!("headers.{name}: {e}"))?;
            headers.push((header, m));
        }
        let mut query_params = Vec::with_capacity(spec.query_params.len());
        for (name, m) in &spec.query_params {
            let m = StringMatch::compile(m).map_err(|e| format!("queryParams.{name}: {e}"))?;
            query_params.push((name.clone(), m));
        }
        Ok(RequestMatch {
            uri: optional(&spec.uri, "uri")?,
            method: optional(&spec.method, "method")?,
            authority: optional(&spec.authority, "authority")?,
            headers,
            query_params,
            port: spec.port,
            gateways: None,
        })
    }

    /// Restricts the match to `gateways` (resolved by the table, which knows the namespace).
    pub fn only_on(mut self, gateways: Vec<ObjectKey>) -> Self {
        self.gateways = Some(gateways);
        self
    }

    /// The Gateways this match is restricted to, if it is.
    pub fn gateways(&self) -> Option<&[ObjectKey]> {
        self.gateways.as_deref()
    }

    /// The `uri` match, for `rewrite.uri` (which replaces a matched prefix).
    pub fn uri(&self) -> Option<&StringMatch> {
        self.uri.as_ref()
    }

    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        let one =
            |m: &Option<StringMatch>, value: &str| m.as_ref().is_none_or(|m| m.matches(value));
        one(&self.uri, request.path)
            && one(&self.method, request.method)
            && one(&self.authority, request.authority)
            && self.port.is_none_or(|p| p == request.port)
            && self.headers.iter().all(|(name, m)| {
                request
                    .headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| m.matches(v)))
            })
            && self.query_params.iter().all(|(name, m)| {
                query_pairs(request.query).any(|(k, v)| k == name.as_str() && m.matches(&v))
            })
    }
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.unwrap_or("").as_bytes()).map(|(k, v)| (k.into(), v.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(path: &'a str, headers: &'a http::HeaderMap) -> RequestView<'a> {
        RequestView {
            path,
            query: Some("a=1&b=two"),
            method: "GET",
            authority: "hostname.org",
            headers,
            port: 23333,
        }
    }

    #[test]
    fn every_condition_must_hold() {
        let spec = HttpMatchSpec {
            uri: Some(StringMatchSpec::Prefix("/who".into())),
            method: Some(StringMatchSpec::Exact("GET".into())),
            headers: vec![("x-user".into(), StringMatchSpec::Regex("al.*".into()))],
            query_params: vec![("b".into(), StringMatchSpec::Exact("two".into()))],
            port: Some(23333),
            ..HttpMatchSpec::default()
        };
        let m = RequestMatch::compile(&spec).unwrap();
        let mut headers = http::HeaderMap::new();
        assert!(!m.matches(&view("/whoami", &headers)));
        headers.insert("x-user", "alice".parse().unwrap());
        assert!(m.matches(&view("/whoami", &headers)));
        assert!(!m.matches(&view("/other", &headers)));
        headers.insert("x-user", "bob".parse().unwrap());
        assert!(!m.matches(&view("/whoami", &headers)));
    }

    #[test]
    fn regexes_match_the_whole_value() {
        let m = StringMatch::compile(&StringMatchSpec::Regex("/a[0-9]".into())).unwrap();
        assert!(m.matches("/a1"));
        assert!(!m.matches("/a1/x"));
    }

    #[test]
    fn a_bad_regex_names_itself() {
        let spec = HttpMatchSpec {
            uri: Some(StringMatchSpec::Regex("(".into())),
            ..HttpMatchSpec::default()
        };
        let error = RequestMatch::compile(&spec).unwrap_err();
        assert!(
            error.starts_with("uri: regex \"(\" does not compile"),
            "{error}"
        );
    }
}
