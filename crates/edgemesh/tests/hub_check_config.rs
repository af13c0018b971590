//! `edgemesh hub --check-config`: the flags, the serving pair and the upstream CA read as the
//! hub would read them, nothing started; exit 0 with the warnings when it would start, 2 naming
//! what is wrong when it would refuse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use edgemesh_testkit::tls::Certs;

const BIN: &str = env!("CARGO_BIN_EXE_edgemesh");

/// `edgemesh hub --check-config` with an upstream, the CA and `extra`.
fn check(certs: &Certs, extra: &[&str]) -> Output {
    let ca = certs.path("ca.crt");
    let mut args = vec![
        "hub",
        "--check-config",
        "--server-addr",
        "https://192.0.2.1:6443",
        "--ca-file",
        &ca,
    ];
    args.extend_from_slice(extra);
    Command::new(BIN).args(&args).output().unwrap()
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_good_set_of_flags_is_valid_and_a_missing_token_is_a_warning() {
    let certs = Certs::new();
    certs.issue("hub", "IP:169.254.2.1");
    let (cert, key) = (certs.path("hub.crt"), certs.path("hub.key"));
    let missing_token = certs.path("no-token");
    let output = check(
        &certs,
        &[
            "--cert-file",
            &cert,
            "--key-file",
            &key,
            "--token-file",
            &missing_token,
        ],
    );
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(
        text.contains("warning: --token-file") && text.contains("no-token"),
        "{text}"
    );
}

#[test]
fn an_unreadable_pair_or_a_bad_flag_exits_2_naming_it() {
    let certs = Certs::new();
    let absent = certs.path("absent.crt");
    let key = certs.path("ca.key");
    let output = check(&certs, &["--cert-file", &absent, "--key-file", &key]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("absent.crt"), "{text}");
    assert!(!text.contains("configuration is valid"), "{text}");

    let output = check(&certs, &["--secure-addr", "", "--config-map", "no-slash"]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--config-map 'no-slash'"), "{text}");
}
