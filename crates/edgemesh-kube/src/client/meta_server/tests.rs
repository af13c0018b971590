#![allow(clippy::unwrap_used)]

use super::*;

/// A directory with `ca.crt` (self-signed, also the client's `server.crt` and `server.key`) and
/// `other.key`, a key of another certificate.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.crt", ca.cert.pem());
        write("server.crt", ca.cert.pem());
        write("server.key", ca.signing_key.serialize_pem());
        write("other.key", other.signing_key.serialize_pem());
        write("garbage", "not PEM at all\n".to_owned());
        Files { dir }
    }

    fn tls(&self, ca: &str, cert: &str, key: &str, insecure: bool) -> MetaServerTls {
        let path = |name: &str| self.dir.path().join(name);
        MetaServerTls {
            ca_file: path(ca),
            cert_file: path(cert),
            key_file: path(key),
            insecure_skip_tls_verify: insecure,
            token_file: path("no-token"),
        }
    }
}

fn error_of(tls: &MetaServerTls) -> String {
    match for_meta_server("https://127.0.0.1:10550", Some(tls)) {
        Ok(_) => "no error".to_owned(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bad_files_are_named_by_key_and_path() {
    let files = Files::new();
    // Each case puts one bad file in the good set, in the slot of the key the error must name.
    let cases = [
        (CA_KEY, "missing.crt", "cannot read it"),
        (CA_KEY, "garbage", "no PEM CERTIFICATE block"),
        (CERT_KEY, "missing.crt", "cannot read it"),
        (KEY_KEY, "garbage", "no usable private key"),
        (KEY_KEY, "other.key", "does not match"),
    ];
    for (key, file, reason) in cases {
        let slot = |slot_key: &str, good: &'static str| if slot_key == key { file } else { good };
        let tls = files.tls(
            slot(CA_KEY, "ca.crt"),
            slot(CERT_KEY, "server.crt"),
            slot(KEY_KEY, "server.key"),
            false,
        );
        let error = error_of(&tls);
        assert!(error.starts_with(key), "{error}");
        assert!(error.contains(file) && error.contains(reason), "{error}");
    }
}

#[tokio::test]
async fn good_files_or_insecure_skip_verify_give_a_client() {
    let files = Files::new();
    let good = files.tls("ca.crt", "server.crt", "server.key", false);
    assert_eq!(error_of(&good), "no error");
    // EdgeMesh reads none of the files with insecureSkipTLSVerify: missing ones are fine.
    let insecure = files.tls("missing.crt", "missing.crt", "missing.key", true);
    assert_eq!(error_of(&insecure), "no error");
    let mut config = Config::new("https://127.0.0.1:10550".parse().unwrap());
    configure(&mut config, &insecure).unwrap();
    assert!(config.accept_invalid_certs);
    assert_eq!(config.auth_info.client_certificate, None);
    configure(
        &mut config,
        &files.tls("x", "server.crt", "server.key", true),
    )
    .unwrap();
    assert!(
        config.auth_info.client_certificate.is_some(),
        "presented when it loads"
    );
}
