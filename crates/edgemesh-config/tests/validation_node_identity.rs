//! `modules.edgeTunnel.nodeIdentity`: bad values and missing files named explicitly are
//! rejected with the key; the defaults (paths that may not exist on a host) never are.

mod common;

use common::{parse, validation_errors};

#[test]
fn bad_node_identity_settings_name_their_key() {
    let cases: &[(&str, &str)] = &[
        (
            "modules:\n  edgeTunnel:\n    nodeIdentity:\n      unattestedPeers: tofu\n",
            "modules.edgeTunnel.nodeIdentity.unattestedPeers: invalid value 'tofu' (allowed: auto, refuse, trustOnFirstUse)",
        ),
        (
            "modules:\n  edgeTunnel:\n    enable: true\n    nodeIdentity:\n      certFile: /nope/node.pem\n",
            "modules.edgeTunnel.nodeIdentity.certFile: file '/nope/node.pem' does not exist",
        ),
        (
            "modules:\n  edgeTunnel:\n    enable: true\n    nodeIdentity:\n      caFiles: [/nope/ca.crt]\n",
            "modules.edgeTunnel.nodeIdentity.caFiles[0]: file '/nope/ca.crt' does not exist",
        ),
        (
            "modules:\n  edgeTunnel:\n    enable: true\n    nodeIdentity:\n      keyFile: /nope/node.key\n",
            "modules.edgeTunnel.nodeIdentity.keyFile: invalid value '/nope/node.key' (allowed: empty unless certFile is set)",
        ),
    ];
    for (yaml, want) in cases {
        let errors = validation_errors(yaml);
        assert!(errors.iter().any(|e| e == want), "{yaml}: {errors:?}");
    }
}

#[test]
fn defaults_and_a_disabled_tunnel_are_valid() {
    for yaml in [
        "modules:\n  edgeTunnel:\n    enable: true\n",
        "modules:\n  edgeTunnel:\n    nodeIdentity:\n      certFile: /nope/node.pem\n",
        "modules:\n  edgeTunnel:\n    enable: true\n    nodeIdentity:\n      unattestedPeers: trustOnFirstUse\n",
    ] {
        assert!(validation_errors(yaml).is_empty(), "{yaml}");
        assert!(parse(yaml).warnings.is_empty(), "{yaml}: unknown keys?");
    }
}
