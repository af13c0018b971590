//! `modules.edgeTunnel.nodeIdentity`: bad values and missing files named explicitly are
//! rejected with the key; the defaults (paths that may not exist on a host) never are.

mod common;

use common::{parse, validation_errors};

/// A config with `modules.edgeTunnel.enable` set to `enable` and one `key: value` line,
/// `identity`, under its `nodeIdentity`.
fn tunnel(enable: bool, identity: &str) -> String {
    format!("modules:\n  edgeTunnel:\n    enable: {enable}\n    nodeIdentity:\n      {identity}\n")
}

#[test]
fn bad_node_identity_settings_name_their_key() {
    // (tunnel on, the nodeIdentity line, the error after "modules.edgeTunnel.nodeIdentity.")
    let cases = [
        (
            false,
            "unattestedPeers: tofu",
            "unattestedPeers: invalid value 'tofu' (allowed: auto, refuse, trustOnFirstUse)",
        ),
        (
            true,
            "certFile: /nope/node.pem",
            "certFile: file '/nope/node.pem' does not exist",
        ),
        (
            true,
            "caFiles: [/nope/ca.crt]",
            "caFiles[0]: file '/nope/ca.crt' does not exist",
        ),
        (
            true,
            "keyFile: /nope/node.key",
            "keyFile: invalid value '/nope/node.key' (allowed: empty unless certFile is set)",
        ),
    ];
    for (enable, identity, want) in cases {
        let yaml = tunnel(enable, identity);
        let want = format!("modules.edgeTunnel.nodeIdentity.{want}");
        let errors = validation_errors(&yaml);
        assert!(errors.contains(&want), "{yaml}: {errors:?}");
    }
}

#[test]
fn defaults_and_a_disabled_tunnel_are_valid() {
    for yaml in [
        "modules:\n  edgeTunnel:\n    enable: true\n".to_owned(),
        tunnel(false, "certFile: /nope/node.pem"),
        tunnel(true, "unattestedPeers: trustOnFirstUse"),
    ] {
        assert!(validation_errors(&yaml).is_empty(), "{yaml}");
        assert!(parse(&yaml).warnings.is_empty(), "{yaml}: unknown keys?");
    }
}
