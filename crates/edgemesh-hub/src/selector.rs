//! Label and field selectors applied to cached objects offline, with the apiserver's syntax.
//!
//! Field selectors are evaluated as a dotted path into the object (`metadata.name`,
//! `spec.nodeName`, `status.phase`), which covers the field labels the apiserver supports for the
//! built-in types.

use serde_json::Value;

use crate::error::SelectorError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelTerm {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (terms are ANDed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelTerm>);

/// A parsed field selector (terms are ANDed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        split_top_level(text)
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| parse_label_term(t.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

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

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError::Field(term.to_string()));
            };
            if field.trim().is_empty() {
                return Err(SelectorError::Field(term.to_string()));
            }
            terms.push((field.trim().to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = match object.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (actual == *value) == *equal
        })
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
    let bad = || SelectorError::Label(term.to_string());
    if let Some(key) = term.strip_prefix('!') {
        return valid_key(key.trim())
            .map(LabelTerm::NotExists)
            .ok_or_else(bad);
    }
    if let Some((k, v)) = term.split_once("!=") {
        let key = valid_key(k.trim()).ok_or_else(bad)?;
        return Ok(LabelTerm::NotEquals(key, v.trim().to_string()));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        let key = valid_key(k.trim()).ok_or_else(bad)?;
        return Ok(LabelTerm::Equals(key, v.trim().to_string()));
    }
    if let Some(open) = term.find('(') {
        let close = term.rfind(')').filter(|c| *c > open).ok_or_else(bad)?;
        let mut head = term[..open].split_whitespace();
        let key = head.next().and_then(valid_key).ok_or_else(bad)?;
        let op = head.next().ok_or_else(bad)?;
        let values = term[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        return match op {
            "in" => Ok(LabelTerm::In(key, values)),
            "notin" => Ok(LabelTerm::NotIn(key, values)),
            _ => Err(bad()),
        };
    }
    valid_key(term).map(LabelTerm::Exists).ok_or_else(bad)
}

fn valid_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "prod",
                            "labels": {"app": "web", "tier": "front"}},
               "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selectors() {
        let table = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("tier in (front,back)", true),
            ("tier notin (front)", false),
            ("missing notin (x)", true),
            ("app=web,tier in (back)", false),
            ("app=web, tier in (a, front)", true),
        ];
        for (text, expected) in table {
            let selector = LabelSelector::parse(text).unwrap();
            assert_eq!(selector.matches(&pod()), expected, "{text}");
        }
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for text in ["app in x", "=web", "a b c (x)", "app in (x"] {
            assert!(LabelSelector::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn field_selectors() {
        let table = [
            ("metadata.name=web-1", true),
            ("metadata.name!=web-1", false),
            ("metadata.namespace==prod,spec.nodeName=n1", true),
            ("status.phase=Pending", false),
            ("spec.missing=", true),
        ];
        for (text, expected) in table {
            let selector = FieldSelector::parse(text).unwrap();
            assert_eq!(selector.matches(&pod()), expected, "{text}");
        }
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
