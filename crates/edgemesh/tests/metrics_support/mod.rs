//! Scrapes an admin `/metrics` with real clients: curl for the HTTP answer, the reference
//! OpenMetrics parser (Python's `prometheus_client`, Debian's python3-prometheus-client from
//! scripts/setup.sh) for the text, so a malformed exposition fails the test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use edgemesh_testkit::netns::Netns;
use serde_json::Value;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prints each metric family as JSON: name → {type, samples: [[name, labels, value]]}.
const PARSE: &str = "import json, sys\n\
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
print(json.dumps({f.name: {'type': f.type, 'samples': [[s.name, s.labels, s.value] \
for s in f.samples]} for f in parse(sys.stdin.read())}))\n";

/// One scrape, parsed.
#[derive(Debug)]
pub struct Scrape {
    pub content_type: String,
    /// Family name (counters without `_total`) → `{type, samples}`.
    pub families: BTreeMap<String, Value>,
}

/// `GET http://admin/metrics` from inside `netns`, parsed as OpenMetrics.
pub fn scrape(netns: &Netns, admin: SocketAddr) -> Scrape {
    let url = format!("http://{admin}/metrics");
    let response = netns
        .exec_ok("curl", &["-sS", "-i", "--max-time", "5", &url])
        .unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {response:?}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Scrape {
        content_type,
        families: parse(body),
    }
}

fn parse(text: &str) -> BTreeMap<String, Value> {
    let mut python = Command::new("/usr/bin/python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/setup.sh installs python3-prometheus-client)");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the exposition: {}\n--- text:\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

impl Scrape {
    /// The value of the sample of `family` (which must be of type `kind`) carrying `labels`.
    pub fn value(&self, family: &str, kind: &str, labels: &[(&str, &str)]) -> f64 {
        self.sample(family, kind, None, labels)
    }

    /// How many durations the histogram `family` (its name ends in `_seconds`) has counted,
    /// after checking that its buckets are cumulative and end with `+Inf` equal to the count.
    pub fn histogram_count(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        let count = self.sample(family, "histogram", Some("_count"), labels);
        let inf: Vec<(&str, &str)> = labels.iter().copied().chain([("le", "+Inf")]).collect();
        let last_bucket = self.sample(family, "histogram", Some("_bucket"), &inf);
        assert_eq!(last_bucket, count, "{family}: +Inf bucket vs _count");
        assert!(
            family.ends_with("_seconds"),
            "{family}: not in the base unit"
        );
        count
    }

    /// The sample named `family` + `suffix` (any name when `suffix` is None) with `labels`.
    fn sample(
        &self,
        family: &str,
        kind: &str,
        suffix: Option<&str>,
        labels: &[(&str, &str)],
    ) -> f64 {
        let Some(found) = self.families.get(family) else {
            panic!("no family {family}; have {:?}", self.families.keys());
        };
        assert_eq!(found["type"], kind, "type of {family}");
        let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
        found["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| suffix.is_none_or(|suffix| s[0] == format!("{family}{suffix}")))
            .find(|s| {
                let have: BTreeMap<&str, &str> = s[1]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                    .collect();
                have == wanted
            })
            .and_then(|s| s[2].as_f64())
            .unwrap_or_else(|| panic!("no sample of {family} with {labels:?}: {found}"))
    }
}
