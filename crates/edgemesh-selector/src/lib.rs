//! Kubernetes label and field selectors, with the apiserver's syntax and matching rules, applied
//! to objects as JSON: the edge hub filters its offline cache with them, and the test kit's
//! apiserver double filters its lists and watches.
//!
//! Field selectors are evaluated as a dotted path into the object (`metadata.name`,
//! `spec.nodeName`, `status.phase`), which covers the field labels the apiserver supports for the
//! built-in types; which fields a resource supports is the caller's business
//! ([`FieldSelector::fields`]).
#![forbid(unsafe_code)]

use serde_json::Value;

/// A selector that does not parse; the text names the bad term.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "invalid label selector term '{0}' (expected key=value, key!=value, key in (a,b), key notin (a,b), key or !key)"
    )]
    Label(String),
    #[error("invalid field selector term '{0}' (expected field=value or field!=value)")]
    Field(String),
}

/// One label requirement. `!=` and `notin` also match objects without the label, as upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelTerm {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`: every term must hold (comma = AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelTerm>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),!f`; an error names the bad term.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        split_top_level(text)
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| parse_label_term(t.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether the selector selects everything (no terms).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `object`'s `metadata.labels` satisfy every term.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.0.iter().all(|term| match term {
            LabelTerm::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelTerm::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelTerm::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelTerm::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            LabelTerm::Exists(k) => get(k).is_some(),
            LabelTerm::NotExists(k) => get(k).is_none(),
        })
    }
}

/// One field requirement: the field, whether it must equal (`=`/`==`) or differ (`!=`), the value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    equal: bool,
    value: String,
}

/// A parsed `fieldSelector`: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldTerm>);

impl FieldSelector {
    /// Parses `metadata.name=x,spec.nodeName!=y`.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let bad = || SelectorError::Field(term.to_owned());
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(bad());
            };
            if field.trim().is_empty() {
                return Err(bad());
            }
            terms.push(FieldTerm {
                field: field.trim().to_owned(),
                equal,
                value: value.trim().to_owned(),
            });
        }
        Ok(Self(terms))
    }

    /// Whether the selector selects everything (no terms).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The fields the selector reads, for a caller that supports only some.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|t| t.field.as_str())
    }

    /// Whether every term holds for `object` (a missing field reads as "").
    pub fn matches(&self, object: &Value) -> bool {
        self.0
            .iter()
            .all(|t| (field_value(object, &t.field) == t.value) == t.equal)
    }
}

/// A dotted field path read as upstream prints it (`true`/`false` for booleans).
fn field_value(object: &Value, path: &str) -> String {
    let pointer = format!("/{}", path.replace('.', "/"));
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Splits at commas outside parentheses: `a in (x,y),b` → [`a in (x,y)`, `b`].
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_label_term(term: &str) -> Result<LabelTerm, SelectorError> {
    let bad = || SelectorError::Label(term.to_owned());
    if let Some(key) = term.strip_prefix('!') {
        return valid_key(key.trim())
            .map(LabelTerm::NotExists)
            .ok_or_else(bad);
    }
    for (op, negate) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = term.split_once(op) {
            let key = valid_key(key.trim()).ok_or_else(bad)?;
            let values = parse_set(set.trim()).ok_or_else(bad)?;
            return Ok(match negate {
                true => LabelTerm::NotIn(key, values),
                false => LabelTerm::In(key, values),
            });
        }
    }
    if let Some((k, v)) = term.split_once("!=") {
        let key = valid_key(k.trim()).ok_or_else(bad)?;
        return Ok(LabelTerm::NotEquals(key, v.trim().to_owned()));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        let key = valid_key(k.trim()).ok_or_else(bad)?;
        return Ok(LabelTerm::Equals(key, v.trim().to_owned()));
    }
    valid_key(term).map(LabelTerm::Exists).ok_or_else(bad)
}

/// `(a, b)` → `["a", "b"]`; `None` without both parentheses.
fn parse_set(set: &str) -> Option<Vec<String>> {
    let inner = set.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn valid_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "prod",
                            "labels": {"app": "web", "tier": "front"}},
               "spec": {"nodeName": "n1", "hostNetwork": true}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selectors_match_like_upstream() {
        let table = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("tier in (front,back)", true),
            ("app in (db)", false),
            ("tier notin (front)", false),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("app=web,tier in (back)", false),
            ("app=web, tier in (a, front)", true),
            ("app in (web,db),tier", true),
        ];
        for (text, expected) in table {
            let selector = LabelSelector::parse(text).unwrap();
            assert_eq!(selector.matches(&pod()), expected, "{text}");
        }
    }

    #[test]
    fn bad_label_selectors_name_the_term() {
        for text in ["app in x", "=web", "a b c (x)", "app in (x", "a b"] {
            let err = LabelSelector::parse(text).unwrap_err();
            assert!(err.to_string().contains(text), "{err}");
        }
    }

    #[test]
    fn field_selectors() {
        let table = [
            ("metadata.name=web-1", true),
            ("metadata.name!=web-1", false),
            ("metadata.namespace==prod,spec.nodeName=n1", true),
            ("status.phase=Pending", false),
            ("spec.hostNetwork=true", true),
            ("spec.missing=", true),
        ];
        for (text, expected) in table {
            let selector = FieldSelector::parse(text).unwrap();
            assert_eq!(selector.matches(&pod()), expected, "{text}");
        }
        for text in ["nonsense", "=x"] {
            assert!(FieldSelector::parse(text).is_err(), "{text}");
        }
        let selector = FieldSelector::parse("metadata.name=a,spec.nodeName!=b").unwrap();
        assert_eq!(
            selector.fields().collect::<Vec<_>>(),
            ["metadata.name", "spec.nodeName"]
        );
    }
}
