//! Whatever the file holds, loading and validating return a value or an error, never a panic.

use edgemesh_config::{AgentConfig, RunningMode};
use proptest::prelude::*;

/// Text built from the config's own key names and YAML punctuation reaches far deeper into the
/// typed parse than uniformly random bytes do.
fn yamlish() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "modules:",
        "edgeProxy:",
        "edgeTunnel:",
        "edgeDNS:",
        "kubeAPIConfig:",
        "commonConfig:",
        "enable:",
        "listenPort:",
        "relayNodes:",
        "- nodeName:",
        "advertiseAddress:",
        "transport:",
        "serviceFilterMode:",
        "consistentHash:",
        "load:",
        " true",
        " 1",
        " -1",
        " 1.5",
        " ~",
        " [",
        " ]",
        " {",
        " }",
        " &a",
        " *a",
        " !!str",
        " '",
        "\"",
        "\n",
        "\n  ",
        "\n    ",
        ":",
        "- ",
        "---\n",
        "#",
        "\t",
        "é",
        " 65536",
        " tcp",
    ]);
    prop::collection::vec(tokens, 0..40).prop_map(|parts| parts.concat())
}

fn exercise(text: &str) {
    for mode in [RunningMode::Edge, RunningMode::Cloud] {
        if let Ok(loaded) = AgentConfig::from_yaml(text, "fuzz.yaml", mode) {
            let _ = loaded.config.validate();
            for warning in &loaded.warnings {
                let _ = warning.to_string();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        exercise(&text);
    }

    #[test]
    fn yaml_like_strings_never_panic(text in yamlish()) {
        exercise(&text);
    }
}

#[test]
fn deeply_nested_input_is_an_error_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        let flow = format!("fooBar: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let block: String = (0..depth.min(5_000))
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        for text in [flow, format!("unknown:\n{block}")] {
            exercise(&text);
        }
    }
}
