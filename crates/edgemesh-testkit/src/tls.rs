//! Certificates for tests, made with the `openssl` command (Debian package `openssl`): a CA in a
//! temporary directory and certificates it signs, each with the subjectAltName a test needs.

use std::path::Path;
use std::process::Command;

/// `openssl req` arguments for a new unencrypted P-256 key.
const NEW_KEY: &[&str] = &[
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A CA (`ca.crt`, `ca.key`) and the certificates issued by it, in a temporary directory that
/// lives as long as this value. Panics when openssl is missing or fails: test set-up only.
#[derive(Debug)]
pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// A fresh CA, valid for a day.
    pub fn new() -> Certs {
        let certs = Certs {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}")),
        };
        let self_signed = ["-x509", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1"];
        certs.openssl(
            &[
                &["req"],
                NEW_KEY,
                &self_signed,
                &["-subj", "/CN=edgemesh-test-ca"],
            ]
            .concat(),
        );
        certs
    }

    /// `<name>.crt` / `<name>.key` with subjectAltName `san` (e.g. `DNS:web,IP:10.96.0.1`),
    /// signed by the CA.
    pub fn issue(&self, name: &str, san: &str) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(
            self.dir.path().join(&ext),
            format!("subjectAltName={san}\n"),
        )
        .unwrap_or_else(|e| panic!("writing {ext}: {e}"));
        let subject = format!("/CN={name}");
        let request = ["-keyout", &key, "-out", &csr, "-subj", &subject];
        self.openssl(&[&["req"], NEW_KEY, &request].concat());
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
    }

    /// The path of `file` (`ca.crt`, `<name>.crt`, `<name>.key`) as a string for command lines.
    pub fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_string_lossy().into_owned()
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl is needed by this test (apt-get install openssl): {e}")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Default for Certs {
    fn default() -> Self {
        Self::new()
    }
}
